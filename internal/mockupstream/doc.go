// Package mockupstream is a faithful stand-in for the AI providers, the one emulated thing
// in FluxCode's tests and benchmarks. It speaks the Anthropic Messages API, the OpenAI
// chat completions and responses APIs and the Gemini API as their clients see them on the
// wire; it is scriptable per upstream key (the credential the caller
// presents) and counts what it served, so that tests can check the gateway's limits,
// failover and billing from outside.
//
// # Provider API
//
// Anthropic:
//
//	POST /v1/messages[?beta=true]              JSON answer, or SSE when "stream": true
//	POST /v1/messages/count_tokens[?beta=true] {"input_tokens": N}
//	GET  /v1/models[?limit=&after_id=&before_id=], GET /v1/models/{id}
//	HEAD /api/hello                            200
//
// Every answer carries a request-id header (req_…). For Anthropic the credential is x-api-key or
// Authorization: Bearer (any non-empty value is accepted unless a script says otherwise);
// anthropic-version is required. An anthropic-beta value that is not a dated beta name
// ("interleaved-thinking-2025-05-14") gets 400 invalid_request_error quoting it back, as
// Anthropic does: "Unexpected value(s) `…` for the `anthropic-beta` header. …". Bad JSON, a missing model, messages or max_tokens give 400
// invalid_request_error in Anthropic's body {"type":"error","error":{"type","message"},
// "request_id"}. Unknown body fields and role "system" messages are accepted.
//
// A stream is, exactly: message_start (usage with input_tokens, cache_creation_input_tokens,
// cache_read_input_tokens, cache_creation{ephemeral_5m_input_tokens,
// ephemeral_1h_input_tokens}, output_tokens ≤ 1), content_block_start, ping, N
// content_block_delta text_delta events, content_block_stop, message_delta (stop_reason
// end_turn and the cumulative usage: output_tokens plus input and cache totals),
// message_stop. Each event is flushed on its own. A JSON answer carries the same text
// (ReplyText(N)) and the full usage.
//
// OpenAI, keyed by Authorization: Bearer:
//
//	POST /v1/chat/completions   JSON, or data-only SSE ending in [DONE]; the usage chunk
//	                            (choices []) only with stream_options.include_usage
//	POST /v1/responses          JSON, or named SSE events with sequence_number ending in
//	                            response.completed (usage); a WebSocket upgrade gets 426
//	GET  /v1/models[/{id}]      OpenAI's list, when the request has neither x-api-key nor
//	                            anthropic-version (those go to Anthropic's)
//
// OpenAI reports no cache writes: its usage is prompt = input + cache read (cached_tokens)
// and completion = output, and the mock reports and counts cache 5m/1h as zero. Errors are
// {"error":{"message","type","param","code"}}; a 429 carries retry-after, x-ratelimit-*
// (api) and x-codex-primary-* (unified) headers; a mid-stream failure is a data-only error
// object (chat) or response.failed whose error.code is Failure.ErrorType (responses).
//
// Gemini, keyed by x-goog-api-key, ?key= or Authorization: Bearer:
//
//	POST /v1beta/models/{m}:generateContent        JSON
//	POST /v1beta/models/{m}:streamGenerateContent  with ?alt=sse: data-only chunks separated
//	                                               by CRLF CRLF, the last with finishReason
//	                                               STOP and the final usageMetadata;
//	                                               without: one JSON array of the chunks,
//	                                               sent chunk by chunk (no Content-Length);
//	                                               a mid-stream error is its last element
//	POST /v1beta/models/{m}:countTokens            {"totalTokens": N}
//	GET  /v1beta/models[?pageSize=&pageToken=], GET /v1beta/models/{m}
//
// (also under /v1/models/{m}:method). Like OpenAI, Gemini reports no cache writes:
// promptTokenCount = input + cache read (cachedContentTokenCount), candidatesTokenCount =
// output; a request that turns thinking on (generationConfig.thinkingConfig) has a third of
// its output reported as thoughtsTokenCount instead, apart from the candidates. Errors are google.rpc bodies {"error":{"code","message","status","details"}};
// Failure.ErrorType is the status word, or API_KEY_INVALID for Google's 400 on a bad key;
// a 429 carries QuotaFailure and RetryInfo (retryDelay) details.
//
// # Login server
//
// Claude's OAuth, with the real paths (oauth.go): GET /oauth/authorize (PKCE S256; 302 to
// redirect_uri with code and state), POST /v1/oauth/token (JSON; authorization_code with the
// verifier checked, or refresh_token), GET /api/oauth/profile. Refresh tokens rotate: a
// refresh answers new tokens and the old refresh token is invalid_grant from then on. Access
// tokens the login server issued are refused by the Anthropic endpoints with 401
// authentication_error once expired (ExpireAccess ends one at once). A Script's Unified adds
// the anthropic-ratelimit-unified-* window headers to successful answers. Tests create logins
// directly (NewLogin), revoke them (RevokeLogin), hold refresh grants (HoldRefreshes: a grant
// whose caller leaves rotates nothing) and read OAuthStats; over HTTP under /_mock/oauth/.
//
// ChatGPT's sign-in at auth.openai.com (codex_auth.go) shares the authorize page; its token
// endpoint POST /oauth/token takes form-encoded (or JSON) grants without state, answers JWT
// access tokens and an id_token whose "https://api.openai.com/auth" claim names the
// chatgpt_account_id, user and plan, and refuses a rotated-away refresh token with 401
// refresh_token_reused (a revoked one: refresh_token_invalidated). NewChatGPTLogin creates
// one directly.
//
// # Codex backend
//
// The backend of ChatGPT logins (codex.go): POST /backend-api/codex/responses and GET
// /backend-api/codex/models take only a ChatGPT login's access token with its account in
// ChatGPT-Account-ID (401 token_expired once expired), require stream true, store false, a
// string instructions and a list input, and refuse max_output_tokens and the sampling
// parameters (400 {"detail":…}); the Responses stream is the OpenAI one. A Script's Unified
// drives the x-codex-primary-* (5 h) and x-codex-secondary-* (weekly) window headers, and a
// window at 100 % answers 429 usage_limit_reached with resets_at.
//
// # Code Assist and Google's login server
//
// Gemini CLI's "Login with Google" (codeassist.go, codeassist_oauth.go): Google's OAuth
// at its real paths (GET /o/oauth2/v2/auth with PKCE S256 and login_hint naming the
// account; POST /token, form-encoded with the client secret; GET /oauth2/v2/userinfo) and
// Code Assist under POST /v1internal:{method}: loadCodeAssist (tiers, and the project once
// onboarded), onboardUser (a long-running operation, done after CodeAssistUser.OnboardPolls
// more polls), and generateContent, streamGenerateContent and countTokens taking the
// envelope {"model","project","user_prompt_id","request"} and answering each chunk as
// {"response":…,"traceId"}. Google's refresh tokens do not rotate: a refresh answers only a
// new access token (3599 s), and a revoked refresh token is invalid_grant. An expired
// access token is 401 UNAUTHENTICATED; a request naming another user's project is 403.
// Tests sign users in directly (NewGoogleLogin), shape them (SetCodeAssistUser), expire
// tokens (ExpireGoogleAccess), revoke logins (RevokeGoogleLogin) and read GoogleStats; over
// HTTP under /_mock/google/.
//
// # Scripts
//
// A Script (SetScript, SetDefaultScript, or POST /_mock/script) sets, per key: latency
// before the headers, N and the pacing between events, the usage (fixed, or derived
// deterministically from the request body and a seed: DeriveUsage), and a Failure —
// an HTTP status (400, 401, 403, 404, 413, 429 with retry-after and the
// anthropic-ratelimit-* and unified reset headers, 500, 529 overloaded_error, ...), a
// connection reset before any byte, a mid-stream `event: error` after K events, a stall
// after K events, or a connection reset after K events; for every request, or for the
// next FailTimes requests it applies to. A Script with Revoked answers every request of the
// key, on every endpoint, with the provider's answer for an invalid key (401; Gemini's 400
// INVALID_ARGUMENT with reason API_KEY_INVALID). A Script with HoldModels
// holds the key's model-list answers (counted and recorded already) until ReleaseModels (POST
// /_mock/release?key=K): a test decides when a caller's check of a key is answered.
//
// # Per-request directives
//
// For mixed load, a request can choose its own behaviour: a directive anywhere in
// metadata.user_id or in a system text (the string, or the text of any system block) —
// for OpenAI in user, metadata.user_id, instructions or a system/developer message; for
// Gemini in a systemInstruction text part:
//
//	mock:name=value[,name=value...]
//
// The directive ends at the first byte that is not a letter, digit or one of _ = , . / + -.
// Several directives apply in order. Settings:
//
//	latency=D       wait D before the headers (Go duration "250ms", or seconds "0.25")
//	events=N        N text deltas (N ≥ 0)
//	interval=D      pause D between stream events
//	usage=I/O/W5/W1/R  fixed usage: input/output/cache 5m/cache 1h/cache read
//	                (trailing fields may be left out and are 0)
//	seed=S          usage derived from the body with seed S
//	fail=F          F is an HTTP status (529, 429, ...) or reset, error, stall, drop
//	after=K         mid-stream failures come after K events
//	retry_after=D   429: retry-after and reset distance (default 60s)
//	ratelimit=R     429 header families: both (default), api, unified, none
//	no_retry_after=true  429 without retry-after
//	torn=true       drop: send half of the next event (array element) before the reset
//	error_type=T    error type in the body or error event
//
// e.g. "mock:fail=529", "mock:events=20,interval=5ms", "mock:fail=error,after=3",
// "mock:usage=1200/300/1000/0/5000". A directive's failure replaces the key's scripted
// failure for that request and does not use up a FailTimes count; a failure that cannot act
// on the request (fail=error on a JSON request, a mid-stream kind on count_tokens) is
// ignored. An invalid directive is answered with 400 invalid_request_error naming it.
//
// # Counters and logs
//
// Per key (Stats, GET /_mock/stats?key=): requests, in flight now, peak in flight
// (ResetPeak), errors, scripted failures, completed answers, answers the peer aborted,
// and the sum per usage bucket of the final usage the mock reported in completed answers
// (a JSON body written and flushed; a stream's message_delta written and flushed). A
// bounded request log (Log, GET /_mock/log) has one entry per answer with its request id,
// key, model, usage and how far it got; the last requests of each key are recorded with
// headers and body (Requests, GET /_mock/requests) for byte-for-byte assertions.
// The mock books an answer only after its last byte is flushed, a moment after a client
// may already hold it: call WaitIdle (GET /_mock/idle) before reading counters.
//
// A write that succeeded may still not reach a peer that is closing at that moment; the
// mock checks the request context before each event to keep that window small.
package mockupstream
