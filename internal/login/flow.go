package login

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/fluxcode/fluxcode/internal/coord"
)

// FlowTTL is how long a started sign-in may take to finish.
const FlowTTL = 15 * time.Minute

// ErrDiscovery: the code was exchanged, but what the provider must tell about the login
// after it (a Code Assist project) could not be learnt; the error says why.
var ErrDiscovery = errors.New("the sign-in succeeded, but the login could not be set up")

// ErrFlowUnknown: the state names no pending flow (never started, expired, or finished).
var ErrFlowUnknown = errors.New("no pending sign-in with this state (expired, already finished, or never started)")

// Flows run sign-ins. Nothing about a pending flow lives in one process: the state carries
// the kind, the PKCE verifier is derived from the state with a key every node shares (so no
// secret is stored anywhere), and a counter in the coordination store, expiring after
// FlowTTL, says the flow was started and lets exactly one finish consume it.
type Flows struct {
	client  *Client
	counter coord.Counters
	// derive is a keyed hash shared by every node (the API-key hash key).
	derive func(string) []byte
}

// NewFlows returns the sign-in flows of client's provider.
func NewFlows(client *Client, counters coord.Counters, derive func(string) []byte) *Flows {
	return &Flows{client: client, counter: counters, derive: derive}
}

// Started is a sign-in waiting for the operator.
type Started struct {
	URL       string
	State     string
	ExpiresIn time.Duration
}

// flowKey names a pending flow per provider: a state started for one provider does not
// finish through another's route.
func (f *Flows) flowKey(state string) string {
	return "login:flow:" + f.client.cfg.Name + ":" + state
}

// verifier is the PKCE verifier of state: 43 base64url characters, secret to the nodes.
func (f *Flows) verifier(state string) string {
	return base64.RawURLEncoding.EncodeToString(f.derive("login-pkce\x00" + f.client.cfg.Name + "\x00" + state))
}

// offers reports whether the provider has logins of kind.
func (f *Flows) offers(kind string) bool {
	for _, k := range f.client.cfg.Kinds() {
		if k == kind {
			return true
		}
	}
	return false
}

// Start begins a sign-in of kind and returns the page to open.
func (f *Flows) Start(ctx context.Context, kind string) (Started, error) {
	if !f.offers(kind) {
		return Started{}, fmt.Errorf("login: %s has no %q logins", f.client.cfg.Name, kind)
	}
	state := kind + "." + strings.TrimRight(base64.RawURLEncoding.EncodeToString([]byte(rand.Text())), "=")
	if _, err := f.counter.Incr(ctx, f.flowKey(state), 1, FlowTTL); err != nil {
		return Started{}, fmt.Errorf("login: record the pending sign-in: %w", err)
	}
	sum := sha256.Sum256([]byte(f.verifier(state)))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])
	return Started{URL: f.client.AuthURL(state, challenge, kind == KindSetupToken), State: state, ExpiresIn: FlowTTL}, nil
}

// Finished is a completed sign-in.
type Finished struct {
	Kind  string
	Token Token
}

// ParseCode reads what the operator pasted: the callback URL (…?code=C&state=S), Claude's
// "C#S", or the bare code C (state then comes from the caller). It returns code and state.
func ParseCode(pasted, state string) (string, string, error) {
	pasted = strings.TrimSpace(pasted)
	if strings.Contains(pasted, "://") {
		u, err := url.Parse(pasted)
		if err != nil {
			return "", "", errors.New("the callback URL cannot be parsed")
		}
		q := u.Query()
		if q.Get("code") == "" {
			return "", "", errors.New("the callback URL has no code parameter")
		}
		if s := q.Get("state"); s != "" {
			state = s
		}
		return q.Get("code"), state, nil
	}
	if code, s, ok := strings.Cut(pasted, "#"); ok {
		if s != "" {
			state = s
		}
		pasted = code
	}
	if pasted == "" {
		return "", "", errors.New("the code is empty")
	}
	if state == "" {
		return "", "", errors.New("state is required with a bare code")
	}
	return pasted, state, nil
}

// Finish consumes the pending flow of state (once: a second finish of the same state is
// ErrFlowUnknown), exchanges code for tokens and runs the provider's discovery.
func (f *Flows) Finish(ctx context.Context, code, state string) (Finished, error) {
	kind, _, _ := strings.Cut(state, ".")
	if !f.offers(kind) {
		return Finished{}, ErrFlowUnknown
	}
	// The first Incr after Start answers 2; an expired or unknown state starts a new key
	// at 1 (expiring on its own), a finished one is past 2.
	n, err := f.counter.Incr(ctx, f.flowKey(state), 1, FlowTTL)
	if err != nil {
		return Finished{}, fmt.Errorf("login: read the pending sign-in: %w", err)
	}
	if n != 2 {
		return Finished{}, ErrFlowUnknown
	}
	tok, err := f.client.Exchange(ctx, code, state, f.verifier(state))
	if err != nil {
		return Finished{}, err
	}
	if err := f.client.Discover(ctx, &tok); err != nil {
		return Finished{}, fmt.Errorf("login: %w: %w", ErrDiscovery, err)
	}
	return Finished{Kind: kind, Token: tok}, nil
}

// Is reports whether err is one of the package's refusals of what the operator supplied
// (an unknown flow, a refused code) rather than a failure to reach something.
func Is(err error) bool { return errors.Is(err, ErrFlowUnknown) || errors.Is(err, ErrInvalidGrant) }
