package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"

	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/store"
)

// AccountTest is what one test request through an account found.
type AccountTest struct {
	OK      bool
	Status  int           // the upstream's HTTP status; 0 when no answer came
	Latency time.Duration // from sending the request to the end of the answer
	Model   string        // the upstream model asked
	Reply   string        // the start of the answer's text, when OK
	Error   string        // what went wrong, when not OK (cleaned of credentials)
}

// testModels is the small model a test asks for when the admin names none and the account
// maps no models.
var testModels = map[string]string{
	store.PlatformAnthropic: "claude-haiku-4-5",
	store.PlatformOpenAI:    "gpt-5-mini",
	store.PlatformGemini:    "gemini-2.5-flash",
}

// testTimeout bounds one test request.
const testTimeout = 60 * time.Second

// TestAccount sends one small request through the account the way a client request goes:
// the account's provider, credentials, base URL and proxy, and the gateway's dial guard. A
// login whose access token is refused (401) is renewed and tried once more, as a client
// request's would be. It is the admin's look at the account, not traffic: nothing is
// billed, no ledger row is written, no slot is taken and the account is not marked,
// whatever the answer.
func (g *Gateway) TestAccount(ctx context.Context, acct *store.Account, model string) AccountTest {
	res := AccountTest{Model: testModel(acct, model)}
	prov := g.providerOf(acct.Platform)
	if prov == nil {
		res.Error = "no provider serves platform " + acct.Platform
		return res
	}
	ctx, cancel := context.WithTimeout(ctx, testTimeout)
	defer cancel()
	res = g.testOnce(ctx, prov, acct, res)
	if res.Status == http.StatusUnauthorized && g.logins != nil && g.logins.Renews(acct) {
		fresh, err := g.logins.Refresh(ctx, acct)
		if err != nil {
			res.Error = g.testNote(acct, "the access token was refused and renewing the login failed: "+err.Error())
			return res
		}
		res = g.testOnce(ctx, prov, fresh, AccountTest{Model: res.Model})
	}
	return res
}

// testOnce sends the test request through acct once.
func (g *Gateway) testOnce(ctx context.Context, prov provider.Provider, acct *store.Account, res AccountTest) AccountTest {
	in, body, parsed, why := testRequest(prov, acct, res.Model)
	if why != "" {
		res.Error = why
		return res
	}
	target := provider.Target{Account: acct, Model: res.Model}
	req, err := prov.NewUpstreamRequest(ctx, provider.OpMessages, target, in, body)
	if err != nil {
		res.Error = g.testNote(acct, "build the request: "+err.Error())
		return res
	}
	rt, err := g.transportFor(ctx, acct)
	if err != nil {
		res.Error = g.testNote(acct, err.Error())
		return res
	}
	start := time.Now()
	resp, err := rt.RoundTrip(req)
	if err != nil {
		res.Latency, res.Error = time.Since(start), g.testNote(acct, "no answer: "+err.Error())
		return res
	}
	var answerBody io.Reader = resp.Body
	if ad, ok := prov.(provider.AnswerAdapter); ok && resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		// As the gateway reads it: some logins answer in another shape (a stream, an envelope).
		answerBody = ad.AdaptAnswer(provider.OpMessages, target, parsed, resp, resp.Body)
	}
	answer, err := io.ReadAll(io.LimitReader(answerBody, 1<<20))
	resp.Body.Close()
	res.Latency, res.Status = time.Since(start), resp.StatusCode
	switch {
	case err != nil:
		res.Error = g.testNote(acct, "reading the answer: "+err.Error())
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		f := prov.Classify(resp.StatusCode, resp.Header, answer, g.now())
		res.Error = accountNote(acct, &f)
	default:
		res.OK, res.Reply = true, provider.CleanText(replyText(answer), 200)
	}
	return res
}

// testModel is the model to ask: the admin's, else the first the account maps, else the
// platform's small model. A mapped name is sent as the account maps it.
func testModel(acct *store.Account, model string) string {
	if model == "" && len(acct.ModelMapping) > 0 {
		names := make([]string, 0, len(acct.ModelMapping))
		for name := range acct.ModelMapping {
			names = append(names, name)
		}
		model = slices.Min(names)
	}
	if model == "" {
		model = testModels[acct.Platform]
	}
	if to, ok := acct.ModelMapping[model]; ok {
		return to
	}
	return model
}

// testRequest is a one-line question asking for a few tokens, in the first of the
// platform's protocols the account serves (a ChatGPT login serves only the Responses API),
// parsed as the gateway parses a client's; why says why none fits.
func testRequest(prov provider.Provider, acct *store.Account, model string) (in provider.Inbound, body []byte, req provider.Request, why string) {
	const question = "Reply with the single word: ok"
	type candidate struct {
		path string
		body []byte
	}
	var cands []candidate
	switch acct.Platform {
	case store.PlatformOpenAI:
		cands = []candidate{
			{"/v1/chat/completions", fmt.Appendf(nil, `{"model":%q,"max_completion_tokens":16,"messages":[{"role":"user","content":%q}]}`, model, question)},
			{"/v1/responses", fmt.Appendf(nil, `{"model":%q,"max_output_tokens":16,"input":%q}`, model, question)},
		}
	case store.PlatformGemini:
		cands = []candidate{{"/v1beta/models/" + model + ":generateContent",
			fmt.Appendf(nil, `{"contents":[{"role":"user","parts":[{"text":%q}]}],"generationConfig":{"maxOutputTokens":16}}`, question)}}
	default:
		cands = []candidate{{"/v1/messages",
			fmt.Appendf(nil, `{"model":%q,"max_tokens":16,"messages":[{"role":"user","content":%q}]}`, model, question)}}
	}
	why = "no test request fits the account"
	for _, c := range cands {
		in = provider.Inbound{Header: http.Header{}, Path: c.path}
		r, err := prov.ParseRequest(provider.OpMessages, in, c.body)
		if err != nil {
			why = "the test request: " + err.Error()
			continue
		}
		if f, ok := prov.(provider.AccountFilter); ok {
			if reason := f.Unserved(acct, provider.OpMessages, r); reason != "" {
				why = reason
				continue
			}
		}
		return in, c.body, r, ""
	}
	return in, nil, provider.Request{}, why
}

// replyPaths are where the platforms' answers hold their text: Anthropic's content blocks,
// OpenAI's chat choices and responses output, Gemini's candidate parts.
var replyPaths = []string{"content.#.text", "choices.0.message.content", "output.#.content.#.text",
	"candidates.0.content.parts.#.text"}

// replyText is the text of a successful answer, whichever of the shapes it has.
func replyText(body []byte) string {
	for _, path := range replyPaths {
		if s := flatten(gjson.GetBytes(body, path)); s != "" {
			return s
		}
	}
	return ""
}

func flatten(v gjson.Result) string {
	if !v.IsArray() {
		return v.String()
	}
	var b strings.Builder
	for _, e := range v.Array() {
		b.WriteString(flatten(e))
	}
	return b.String()
}

// testNote is an error text cleaned of the account's credentials.
func (g *Gateway) testNote(acct *store.Account, msg string) string {
	return accountNote(acct, &provider.Failure{Message: msg})
}

// providerOf is the provider of a platform, or nil.
func (g *Gateway) providerOf(platform string) provider.Provider {
	for _, rt := range g.routes {
		for _, p := range rt.provs {
			if p.Platform() == platform {
				return p
			}
		}
	}
	return nil
}

// accountErrorTally counts this node's failed upstream attempts per day and account until
// the next flush; like the outcome counts, a statistic that a dying node may lose.
type accountErrorTally struct {
	mu     sync.Mutex
	counts map[store.AccountErrors]int64 // keyed with Errors 0
}

func (t *accountErrorTally) add(at time.Time, accountID int64) {
	t.mu.Lock()
	if t.counts == nil {
		t.counts = make(map[store.AccountErrors]int64)
	}
	t.counts[store.AccountErrors{Day: at.UTC().Format(time.DateOnly), AccountID: accountID}]++
	t.mu.Unlock()
}

// take empties the tally and returns what it held.
func (t *accountErrorTally) take() []store.AccountErrors {
	t.mu.Lock()
	defer t.mu.Unlock()
	rows := make([]store.AccountErrors, 0, len(t.counts))
	for k, n := range t.counts {
		k.Errors = n
		rows = append(rows, k)
	}
	t.counts = nil
	return rows
}

// giveBack returns rows a failed flush could not write, for the next one.
func (t *accountErrorTally) giveBack(rows []store.AccountErrors) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.counts == nil {
		t.counts = make(map[store.AccountErrors]int64)
	}
	for _, r := range rows {
		t.counts[store.AccountErrors{Day: r.Day, AccountID: r.AccountID}] += r.Errors
	}
}

// flushAccountErrors adds the tally to the store; on failure the counts wait for the next
// flush.
func (g *Gateway) flushAccountErrors(ctx context.Context) {
	rows := g.accountErrs.take()
	if len(rows) == 0 {
		return
	}
	if err := g.store.AddAccountErrors(ctx, rows); err != nil {
		g.accountErrs.giveBack(rows)
		g.log.WarnContext(ctx, "account error counts not written; retrying at the next flush", "err", err)
	}
}
