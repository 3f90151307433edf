package login

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/fluxcode/fluxcode/internal/coord"
	"github.com/fluxcode/fluxcode/internal/invalidate"
	"github.com/fluxcode/fluxcode/internal/secret"
	"github.com/fluxcode/fluxcode/internal/store"
)

// Store is what a Refresher reads and writes.
type Store interface {
	GetAccount(ctx context.Context, id int64) (*store.Account, error)
	ListAccounts(ctx context.Context, p store.Page) ([]store.Account, int, error)
	UpdateCredentials(ctx context.Context, id int64, c store.Credentials, version int64) (int64, error)
	MarkAccount(ctx context.Context, id int64, m store.AccountMark) error
}

// Refresher renews logins' access tokens.
type Refresher struct {
	store     Store
	coord     coord.Coordinator
	providers *Registry
	log       *slog.Logger
	owner     string
	// lockTTL bounds how long a refresh holds its account's lock; the token call gets
	// two thirds of it, so a lock never lapses under a live call.
	lockTTL time.Duration
	poll    time.Duration
}

// NewRefresher returns a refresher; node names the lock owner in logs and leases. lockTTL
// 0 means 30 s.
func NewRefresher(st Store, c coord.Coordinator, providers *Registry, log *slog.Logger, node string, lockTTL time.Duration) *Refresher {
	if lockTTL <= 0 {
		lockTTL = 30 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Refresher{store: st, coord: c, providers: providers, log: log.With("component", "login"),
		owner: node + "/" + secret.RandomToken(6), lockTTL: lockTTL, poll: 50 * time.Millisecond}
}

// Renews reports whether a refresh can renew the account: an OAuth login with a refresh
// token (Claude's setup token has none and is not renewed) of a platform this node has a
// login provider for — a refresh token only ever reaches its own provider's endpoint. It
// implements the gateway's Logins.
func (r *Refresher) Renews(a *store.Account) bool {
	if r == nil {
		return false
	}
	_, ok := r.client(a)
	return ok
}

func (r *Refresher) client(a *store.Account) (*Client, bool) {
	if a.Type != store.AccountTypeOAuth || a.Credentials.RefreshToken == "" {
		return nil, false
	}
	p, ok := r.providers.ForPlatform(a.Platform)
	if !ok {
		return nil, false
	}
	return p.Client, true
}

// Refresh renews the account's token unless it changed since the caller read it, and
// returns the account as stored afterwards. It implements the gateway's Logins.
func (r *Refresher) Refresh(ctx context.Context, a *store.Account) (*store.Account, error) {
	return r.RefreshID(ctx, a.ID, a.CredentialsVersion)
}

// RefreshID brings account id's credentials past version seen: when they already are (another
// node refreshed), it returns them; otherwise it takes the account's lock and refreshes, or
// waits for the holder of the lock to store the new token. Only the lock holder calls the
// token endpoint, and it writes only over the version it read.
//
// invalid_grant marks the account in error, with the reason, only when no newer token was
// stored meanwhile: the refresh token a node used may have been rotated away by another node
// an instant before, which is no fault of the login.
func (r *Refresher) RefreshID(ctx context.Context, id, seen int64) (*store.Account, error) {
	lock := "login:refresh:" + strconv.FormatInt(id, 10)
	owner := r.owner + "/" + secret.RandomToken(6) // per call: a lease extends for its own owner
	for {
		a, err := r.store.GetAccount(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("login: read account %d: %w", id, err)
		}
		if a.CredentialsVersion > seen {
			return a, nil
		}
		if !r.Renews(a) {
			return nil, fmt.Errorf("login: account %d is not a login this node can renew", id)
		}
		ok, _, err := r.coord.AcquireLease(ctx, lock, owner, r.lockTTL)
		if err != nil {
			return nil, fmt.Errorf("login: lock account %d: %w", id, err)
		}
		if ok {
			defer r.release(lock, owner)
			return r.refreshLocked(ctx, id, seen)
		}
		select { // another node refreshes: wait for its token (or for its lock to lapse)
		case <-ctx.Done():
			return nil, fmt.Errorf("login: waiting for account %d's refresh: %w", id, ctx.Err())
		case <-time.After(r.poll):
		}
	}
}

func (r *Refresher) release(lock, owner string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.coord.ReleaseLease(ctx, lock, owner); err != nil {
		r.log.Warn("releasing a refresh lock failed; it lapses on its own", "lock", lock, "err", err)
	}
}

// refreshLocked refreshes under the account's lock, from the credentials stored now, unless
// the lock's previous holder stored newer ones than seen between our read and our lock.
func (r *Refresher) refreshLocked(ctx context.Context, id, seen int64) (*store.Account, error) {
	a, err := r.store.GetAccount(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("login: read account %d: %w", id, err)
	}
	if a.CredentialsVersion > seen {
		return a, nil
	}
	client, ok := r.client(a)
	if !ok {
		return nil, fmt.Errorf("login: account %d is not a login this node can renew", id)
	}
	callCtx, cancel := context.WithTimeout(ctx, r.lockTTL*2/3)
	tok, err := client.Refresh(callCtx, a.Credentials.RefreshToken)
	cancel()
	if errors.Is(err, ErrInvalidGrant) {
		return r.refused(ctx, a, err)
	}
	if err != nil {
		return nil, fmt.Errorf("login: refresh account %d: %w", id, err)
	}
	c := a.Credentials
	c.AccessToken, c.ExpiresAt = tok.AccessToken, tok.ExpiresAt
	if tok.RefreshToken != "" {
		c.RefreshToken = tok.RefreshToken
	}
	c.Extra = MergeExtra(c.Extra, tok.Extra)
	v, err := r.store.UpdateCredentials(ctx, id, c, a.CredentialsVersion)
	if err != nil {
		// Only an admin's edit of the credentials can come between (refreshes hold the
		// lock): theirs are newer and stay.
		return nil, fmt.Errorf("login: store account %d's refreshed token: %w", id, err)
	}
	r.publish(ctx, id)
	r.log.InfoContext(ctx, "refreshed a login", "account", id, "expires_at", c.ExpiresAt)
	a.Credentials, a.CredentialsVersion = c, v
	return a, nil
}

// refused handles invalid_grant: an error mark with the reason, unless newer credentials
// were stored since a was read, which are returned.
func (r *Refresher) refused(ctx context.Context, a *store.Account, cause error) (*store.Account, error) {
	now, err := r.store.GetAccount(ctx, a.ID)
	if err == nil && now.CredentialsVersion != a.CredentialsVersion {
		r.log.InfoContext(ctx, "a refresh token was refused after newer credentials were stored; not marked", "account", a.ID)
		return now, nil
	}
	status := store.StatusError
	msg := "login refresh refused: " + cause.Error()
	if err := r.store.MarkAccount(ctx, a.ID, store.AccountMark{Status: &status, ErrorMessage: &msg}); err != nil {
		return nil, fmt.Errorf("login: mark account %d: %w (after %w)", a.ID, err, cause)
	}
	r.publish(ctx, a.ID)
	r.log.WarnContext(ctx, "a login's refresh token was refused; account marked in error", "account", a.ID, "err", cause)
	return nil, fmt.Errorf("login: account %d: %w", a.ID, cause)
}

// publish tells every node to drop its copy of the account: they serve with the new token
// (or skip the marked account) within the invalidation's delay.
func (r *Refresher) publish(ctx context.Context, id int64) {
	if err := invalidate.Publish(ctx, r.coord, invalidate.Account, id); err != nil {
		r.log.WarnContext(ctx, "publishing an account change failed; other nodes see it when their cache expires", "err", err)
	}
}

// RefreshDue refreshes every login that expires within before: the refresh job. It returns
// how many were refreshed and the first error (the others are logged).
func (r *Refresher) RefreshDue(ctx context.Context, now time.Time, before time.Duration) (string, error) {
	var refreshed, failed int
	var first error
	for offset := 0; ; offset += 200 {
		page, _, err := r.store.ListAccounts(ctx, store.Page{Offset: offset, Limit: 200})
		if err != nil {
			return "", fmt.Errorf("login: list accounts: %w", err)
		}
		for i := range page {
			a := &page[i]
			if a.Status != store.StatusActive || !r.Renews(a) || a.Credentials.ExpiresAt.IsZero() ||
				a.Credentials.ExpiresAt.After(now.Add(before)) {
				continue
			}
			if _, err := r.Refresh(ctx, a); err != nil {
				failed++
				r.log.WarnContext(ctx, "refreshing a login failed", "account", a.ID, "err", err)
				if first == nil {
					first = err
				}
				continue
			}
			refreshed++
		}
		if len(page) < 200 {
			break
		}
	}
	return fmt.Sprintf("%d refreshed, %d failed", refreshed, failed), first
}

// MergeExtra returns old's extra values updated with fresh's (a refresh's id_token may name
// a new plan), without changing old's map, which a cached account may share.
func MergeExtra(old, fresh map[string]string) map[string]string {
	if len(fresh) == 0 {
		return old
	}
	out := make(map[string]string, len(old)+len(fresh))
	for k, v := range old {
		out[k] = v
	}
	for k, v := range fresh {
		out[k] = v
	}
	return out
}
