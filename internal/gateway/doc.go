// Package gateway is FluxCode's request path: every relay request is authenticated, admitted,
// scheduled onto an upstream account, forwarded, metered and billed, in that order, by
// gateway.go's handlers with each step in a sibling file (route.go, auth.go, admit.go, body.go,
// schedule.go and slots.go, forward.go and failover.go, stream.go and relay.go, bill.go). Protocol details
// live in internal/provider; this package is the same for every protocol.
//
// # Routes
//
// The route table is built from the providers the gateway is given (route.go); each declares
// its routes, where its clients put the key, and a 404 subtree answered in its error shape.
// A pattern two providers declare is answered by the provider of the key's group. Anthropic's:
//
//	POST /v1/messages               relayed and billed (JSON or SSE)
//	POST /v1/messages/count_tokens  relayed like a message: no slots, no billing
//	GET  /v1/models                 see "Models" below
//
// The query string plays no part in routing and is passed upstream unchanged (Claude Code
// sends ?beta=true), less any key parameter. Anthropic's keys are read from x-api-key, else
// Authorization: Bearer; every key place of the route is removed before a provider sees the
// request, so no client key is ever forwarded. OpenAI's (keys from Authorization: Bearer):
//
//	POST /v1/responses, /responses  relayed and billed (JSON or SSE)
//	POST /v1/chat/completions       relayed and billed (JSON or SSE)
//	GET  /v1/responses, /responses  426: Codex's WebSocket attempt, so it uses HTTP at once
//	GET  /v1/models                 shared with Anthropic
//
// Before the key's group is known (no key, an unknown key, and the shared /v1/ 404 subtree
// for an unknown key), a shared route answers in the shape of the provider whose first key
// place holds the key (x-api-key: Anthropic, Bearer: OpenAI), else of the first provider.
//
// # Telling the gateway's refusals from the upstream's
//
// Every answer in which the gateway itself refused a request carries the header
// X-Fluxcode-Reject; an upstream answer relayed to the client never does. Errors are always in
// the provider's shape (Anthropic's: {"type":"error","error":{"type","message"},"request_id"}),
// and the gateway's own messages start with "FluxCode:".
//
//	X-Fluxcode-Reject  status  error.type        when
//	key                401     authentication_error  no key, an unknown, disabled or expired key
//	forbidden          403     permission_error  the key's user or group is disabled, the
//	                                             group is exclusive and the user not allowed
//	                                             on it, or the group serves another protocol
//	request            4xx     invalid_request_error  the request itself: malformed, too large
//	                                             (413), too slow (408), no such route or model
//	                                             (404), a WebSocket upgrade (426)
//	concurrency        429     rate_limit_error  no slot (user, key or every account) freed
//	                                             within the wait timeout, or WaitQueueMax is 0
//	queue_full         429     rate_limit_error  WaitQueueMax requests of the user or key wait
//	balance            402     billing_error     a balance group and the balance is not positive
//	subscription       403     permission_error  a subscription group and no active subscription
//	subscription       429     rate_limit_error  a subscription window is full; Retry-After says
//	                                             when it restarts
//	coordination       503     overloaded_error  the coordinator (Redis) cannot be reached: no
//	                                             limit can be checked, so nothing is admitted
//	database           503     overloaded_error  the database cannot be reached to check a key
//	                                             that is not in the node's cache, or the node's
//	                                             ledger queue is full (BillQueueMax)
//	unpriced           403     permission_error  no account of the group would serve the model
//	                                             under a name with a price, and unpriced models
//	                                             are not allowed (pricing.go)
//	policy             403     permission_error  the key may not use the model, or not from the
//	                                             client's address (policy.go)
//	rate               429     rate_limit_error  a requests- or tokens-per-minute window of the key
//	                                             or its user is full; Retry-After: its end
//	no_account         503     overloaded_error  no account of the group can serve the model now;
//	                                             Retry-After: the soonest end of an account's mark
//
// Refusals a retry can cure (concurrency, queue_full, coordination, database, body_budget,
// no_account, rate) carry x-should-retry: true and Retry-After, the others x-should-retry: false;
// the Anthropic SDKs honour the header. A node whose Redis is down thus fails fast (one
// refused connection) and serves again by itself once Redis answers.
//
// When every attempt failed, the answer is the last upstream failure in the provider's format
// (Anthropic's named here; OpenAI's overload is a 503),
// without X-Fluxcode-Reject: 429 rate_limit_error (the group's accounts are rate-limited),
// 529 overloaded_error (both keeping the upstream's retry-after), or the upstream's 5xx as
// api_error (502 for a network error). An account's 401/402/403 is the operator's problem, not the client's, so it becomes 502
// api_error. The upstream's own message stays in the logs and the account's state: it
// describes the operator's account, not the client's request. With no account able to serve
// at all (none available, or none allows the model), the gateway's 503 no_account.
//
// # Forwarding
//
// The body goes upstream byte for byte; only "model" is rewritten when the account maps the
// requested model to another (the answer is relayed as the upstream sent it, so it names the
// upstream model). Request headers are allowlisted (provider/anthropic: anthropic-version,
// anthropic-beta, anthropic-dangerous-direct-browser-access, content-type, accept,
// accept-language, user-agent, x-app, x-claude-code-session-id, x-stainless-*); the client's
// credentials never go upstream. Subscription (OAuth) accounts send Authorization: Bearer,
// anthropic-beta with claude-code-20250219 and oauth-2025-04-20 merged into the client's list,
// x-app: cli and a claude-cli user agent. Response headers relayed: content-type, request-id,
// retry-after; plus X-Fluxcode-Request-Id, the gateway's id of the request (its ledger row).
//
// # Failover
//
// Before anything from an upstream reaches the client (SSE pings sent while waiting for a
// slot do not count), a network error (including the connect and header timeouts), 401, 402,
// 403, 408, 429, 529, 5xx, a 400 invalid_request_error whose message starts with "Your credit
// balance is too low", or a stream whose first event is such an error, moves the request to
// another account of the group, at most MaxAccountSwitches times and never to the same
// account twice. Whose fault an answer is comes from its status, its structured error type
// and fixed message prefixes, never from words anywhere in the message: upstreams quote the
// request back (Anthropic names an unknown anthropic-beta value in its 400). A fixed prefix,
// or an admin rule's keyword, that the client's own request contains (headers, query, body
// raw or unescaped) is not trusted for that answer. Marks, shared by all nodes through the
// store and invalidate.Account: 429 → rate-limited until the reset the headers give (unified
// reset, retry-after, exhausted anthropic-ratelimit-*-reset) or RateLimitCooldown; 529 →
// overloaded for OverloadCooldown; 401/403 → one confirming call of the account's own (GET
// /v1/models, no client headers): refused again → error state, accepted → no mark, no clear
// answer → paused for 5 minutes (at most one such call per account in flight on a node:
// requests refused meanwhile fail over without one; before the first byte the request waits
// for the call, at most 15 s; for an error event in an open stream the stream ends with the
// event at once and the call runs in the background, cancelled by Close, which then records
// nothing); 402 and the credit 400 → error state, until an admin clears
// it; an enabled admin error rule (status + keyword) → temporarily unschedulable for its
// minutes instead. The upstream text kept on an account is cleaned: at most 500 bytes, no
// control characters, nothing that looks like a credential. Network errors and 5xx leave no
// mark. Other 4xx pass through unchanged. After the first byte, an upstream
// failure (an error event, a cut connection, IdleTimeout of silence) becomes exactly one error
// event and the stream ends. A client that leaves is not failed over and costs no account a
// mark; the upstream answer is still read to its end (DrainTimeout) and billed, flagged
// partial.
//
// # Concurrency
//
// A request of POST /v1/messages holds a slot of its user, its key and its account (limits of
// 0 mean unlimited), held as a lease that one heartbeat per node renews every SlotTTL/3; a
// crashed node's slots free within SlotTTL. With no slot free, the request waits (at most
// WaitQueueMax waiters per user and per key, for at most WaitTimeout), streaming clients
// receiving an SSE ping every PingInterval (except in a protocol without one its clients
// skip: Gemini's wait in silence). Token counts and model lists take no slots: they
// are short and must not queue behind long streams.
//
// Scheduling ranks the group's usable accounts with a pure function (Rank: priority, load,
// least recently used), then makes one atomic coord.Scheduler call (one Redis round trip):
// it reads the session's binding, tries the bound account first and then the ranking's order,
// takes the user's, key's and first roomy account's slots together, and binds or refreshes
// the session. The request gives every slot back in one call once the upstream's answer is
// read, while its ledger row commits and before the client sees the answer's end (an
// attempt that failed over gives its account slot back at once). So a request costs Redis
// two calls (issue 5: at most three round trips), which share pipelines with other requests'
// under load (coord/redis batch.go); waiting for a slot costs more. A release that fails (Redis down
// as the request ended) is kept by the node and retried every second until Redis takes it,
// so an account is not held full until the leases expire.
//
// # Sessions
//
// A conversation (Claude Code's X-Claude-Code-Session-Id, else the session in
// metadata.user_id, else the system prompt and first message) is bound, per group, to the account that serves it, for StickyTTL after
// its last use, so the upstream's prompt cache keeps working. A bound account that is only
// full is bypassed for that request, and the session stays bound to it; one that can no
// longer serve (marked, disabled, removed, or no longer serving the model) is replaced by the
// account that serves the request. A failover away from the bound account for a reason that
// leaves no mark (a network error, a 5xx) keeps the binding. Token counts do not stick: they
// use no cache upstream.
//
// # Billing
//
// Every answered message gets one ledger row under the gateway request id
// (X-Fluxcode-Request-Id): list price from the upstream model's entry in the price table
// (else the client's model's) × the group's multiplier. The table is the built-in one,
// PRICE_FILE over it, and the admin's model_prices setting over both. A model with no
// price is never served for free by accident: when scheduling, accounts that would serve
// it under a name without a price are left out (others of the group that price it still
// serve), and with none left the request is refused before anything is held or sent
// (X-Fluxcode-Reject: unpriced, naming the model). Only ALLOW_UNPRICED_MODELS or the admin
// setting allow_unpriced_models serves such models, at zero cost with a warning (the
// tokens are still recorded). The store makes the
// row and the balance or subscription change one transaction and skips request ids it
// already has, so a batch written twice bills once.
//
// Commit before complete. A client that saw its answer end was billed, even if the node is
// killed the next moment (SIGKILL, a crash): the end of a complete answer is held back
// until its row is committed. For a stream, the end is the event that completes it
// (message_stop; the meter knows it) and anything after it; for a JSON body, its last byte
// that is not white space and what follows, without which no client has the whole body
// (neither its Content-Length nor a complete JSON value). Everything before the end is
// relayed as it arrives, so holding the end costs no buffering and no time to first byte,
// only the commit itself at the end. A node killed before the commit leaves its client an
// answer without its end (a stream without message_stop, a body short of its length or of
// its closing brace): not a served request. (Killed between the commit and the send, the
// node has billed an answer the client never saw whole: its tokens were consumed, and the
// row is not partial.) Answers that do not end normally (the client left, the upstream
// broke off) are billed as partial and wait for nothing: their client sees no completion.
//
// Rows are written by group commit: one writer per node takes every row queued while it
// was busy (at most BillBatchSize) and writes them in one store call. At concurrency 1 an
// answer's end waits for one short transaction and nothing else. Under load (the previous
// batch carried more than one row) the writer first waits BillGroupDelay (500 µs) for the
// rows of the requests finishing meanwhile, as PostgreSQL's commit_delay does: a commit
// costs the database, or a SQLite node's own CPU, far more than a row, so one transaction
// carries the rows of many requests (on PostgreSQL a balance batch is one statement, see
// sqlstore). Holding the end back costs throughput all the same: at concurrency 32 on the
// 2-core bench machine, about a fifth of the requests per second on PostgreSQL and a third
// on SQLite, whose commits run on the node's own CPU. That is the price of never losing a
// served request.
//
// The wait is bounded. A database that does not answer (a lock, a hung connection) is
// waited for at most BillCommitWait (default 5 s). A database that refuses (PostgreSQL
// restarting: the write and its first retry, 25 ms later, both fail) is not waited for at
// all: the waiting answers are let go at once, and later ones do not wait until a write
// succeeds again, so an outage costs clients no latency. Either way the answer completes
// and its row stays queued, retried at most 100 ms apart (billRetryMax) until the database
// takes it, and written by Close at graceful shutdown (each row Close gives up on is
// logged). fluxcode_gateway_billing_uncommitted_answers_total counts the answers that
// completed before their commit; fluxcode_gateway_billing_queue_depth is the number of rows
// not yet written.
//
// During a database outage, then, a client sees complete answers as usual; what changes is
// that their rows are in the node's memory only. The loss window: a node killed (SIGKILL, a
// crash, a lost host) before the database is back loses the rows it holds, and those
// answers are never billed; a graceful stop writes them if the database returns within the
// time Close is given (the node's flush bound, 30 s). The queue is bounded: with BillQueueMax rows (default 10,000) unwritten,
// billed requests are refused (503, X-Fluxcode-Reject: database, x-should-retry: true)
// until the writer catches up, rather than served without a row the node can keep; requests
// already running still add theirs.
//
// The balance (and a subscription's usage) in the database is the only truth: the store
// debits it in the transaction that writes the ledger rows, and charges are never skipped
// for lack of balance. Admission reads the node's cached copy of it (with the key lookup,
// AuthCacheTTL), less this node's charges still queued (the rows not yet written, which the
// copy cannot include). The writing node applies its committed charges to its own copies at
// once (balances debited in place, subscription users marked to be read again), and every
// BillNotifyInterval (default 200 ms) publishes invalidate.Balance for the users it
// charged, so every node reads them afresh when it next needs them. What bounds a user's
// overspend, then, is what can start before a spent balance is seen everywhere: the
// requests already running (at most the user's concurrency limit, cluster-wide), plus those
// started on other nodes before the notification (BillNotifyInterval plus milliseconds of
// travel), plus, during a database outage, what other nodes charge meanwhile (each node
// counts only its own queue). A node that misses the message (pub/sub is at most once; a
// reconnection drops every cache) sees the balance within AuthCacheTTL (default 10 s). The
// balance goes negative by at most the cost of those requests, and the next admission
// refuses. Publishing costs one Redis call per charged user per interval.
//
// A charge does not make a node forget a key: invalidate.Balance marks the user's cached
// keys to be read again, and a key the node has cached stays its last known value for as
// long as the database cannot be read (cache.go). So through a database outage (a restart,
// a failover) the keys a node has seen keep being served, on their last known balance less
// the node's queued charges, and so do the group's accounts it has cached; keys it has not
// seen get the database 503. Invalidations that can take rights away (a key, user or group
// changed by an admin) still drop the entries. A failed read is tried again 50 ms later
// (fallbackRetry), and the ledger writer at least every 100 ms: a node tries the database
// again within 50 ms of its return, plus the time new connections take (every pooled one
// died with the server). A database that refuses costs those reads nothing;
// one that does not answer at all (a partitioned host) holds each of them, and the
// requests that share it, for up to a second (fallbackLoadTimeout) before the last known
// value answers.
//
// # Models
//
// GET /v1/models lists the union of the group's model mappings when every usable account of
// the group has a mapping (that is exactly what the group serves); otherwise it is relayed to
// an account, whose list is then the truth. A route that describes one model (Gemini's
// GET /v1beta/models/{model}, provider.ModelWriter) is answered the same way: from the
// mappings (a 404 for a model they do not name), or relayed.
package gateway
