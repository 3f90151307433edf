package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/fluxcode/fluxcode/bench/internal/load"
)

// Credentials of the admin every FluxCode deployment of the bench creates on first start,
// and of the user whose key the load generator presents.
const (
	adminEmail    = "admin@bench.local"
	adminPassword = "bench-admin-password"
	userEmail     = "load@bench.local"
	userPassword  = "bench-user-password"
	// limit is the user's, key's and account's concurrency: far above the load, so no
	// request waits, yet set, so every request takes and releases all three slots.
	limit = 5000
)

// apiClient speaks FluxCode's admin and user JSON API.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

func newAPIClient(base string) *apiClient {
	return &apiClient{base: strings.TrimRight(base, "/"), http: &http.Client{Timeout: 30 * time.Second}}
}

// call sends body as JSON and decodes the answer into out; any status but want is an error.
func (c *apiClient) call(ctx context.Context, method, path string, body any, want int, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("content-type", "application/json")
	if c.token != "" {
		req.Header.Set("authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: status %d, want %d: %.300s", method, path, resp.StatusCode, want, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

func (c *apiClient) login(ctx context.Context, email, password string) error {
	var out struct {
		Token string `json:"token"`
	}
	if err := c.call(ctx, "POST", "/api/v1/auth/login", map[string]string{"email": email, "password": password}, 200, &out); err != nil {
		return err
	}
	c.token = out.Token
	return nil
}

// provision sets a FluxCode deployment up the way an operator would, through the API: for
// each protocol a group and one API-key account pointing at the mock; a user with a balance;
// and that user's API key for each group, which it returns by protocol. The accounts present
// upstreamKeys(upstreamKey) to the mock, so the mock's counters for those keys are this
// deployment's upstream traffic.
func provision(ctx context.Context, base, mockURL, upstreamKey string) (apiKeys map[string]string, err error) {
	admin := newAPIClient(base)
	if err := admin.login(ctx, adminEmail, adminPassword); err != nil {
		return nil, fmt.Errorf("admin login: %w", err)
	}
	var user struct {
		ID int64 `json:"id"`
	}
	if err := admin.call(ctx, "POST", "/api/v1/admin/users", map[string]any{
		"email": userEmail, "password": userPassword, "role": "user", "concurrency": limit,
	}, 201, &user); err != nil {
		return nil, err
	}
	// Enough for every request the bench can send (a mock answer costs well under a cent).
	if err := admin.call(ctx, "POST", fmt.Sprintf("/api/v1/admin/users/%d/balance", user.ID), map[string]any{
		"amount": "1000000", "note": "benchmark",
	}, 200, nil); err != nil {
		return nil, err
	}
	u := newAPIClient(base)
	if err := u.login(ctx, userEmail, userPassword); err != nil {
		return nil, fmt.Errorf("user login: %w", err)
	}
	apiKeys = map[string]string{}
	for _, protocol := range load.Protocols {
		var group struct {
			ID int64 `json:"id"`
		}
		if err := admin.call(ctx, "POST", "/api/v1/admin/groups", map[string]any{
			"name": "bench-" + protocol, "platform": protocol, "billing_type": "balance",
		}, 201, &group); err != nil {
			return nil, err
		}
		if err := admin.call(ctx, "POST", "/api/v1/admin/accounts", map[string]any{
			"name": "mock-" + protocol, "platform": protocol, "type": "apikey",
			"credentials": map[string]any{"api_key": upstreamKeys(upstreamKey)[protocol]},
			"base_url":    mockURL, "concurrency": limit, "group_ids": []int64{group.ID},
		}, 201, nil); err != nil {
			return nil, err
		}
		var key struct {
			Key string `json:"key"`
		}
		if err := u.call(ctx, "POST", "/api/v1/keys", map[string]any{
			"name": "bench-" + protocol, "group_id": group.ID, "concurrency": limit,
		}, 201, &key); err != nil {
			return nil, err
		}
		if key.Key == "" {
			return nil, fmt.Errorf("POST /api/v1/keys returned no key")
		}
		apiKeys[protocol] = key.Key
	}
	return apiKeys, nil
}

// upstreamKeys are the keys a deployment's accounts present to the mock, by protocol: the
// deployment's own key for Anthropic, suffixed by the protocol for the others.
func upstreamKeys(upstreamKey string) map[string]string {
	keys := map[string]string{}
	for _, p := range load.Protocols {
		keys[p] = upstreamKey + "-" + p
	}
	keys[load.Anthropic] = upstreamKey
	return keys
}

// ledgerTotals reads the deployment's ledger totals through the admin API.
func ledgerTotals(ctx context.Context, base string) (requests, outputTokens int64, err error) {
	admin := newAPIClient(base)
	if err := admin.login(ctx, adminEmail, adminPassword); err != nil {
		return 0, 0, err
	}
	var out struct {
		Totals struct {
			Requests     int64 `json:"requests"`
			OutputTokens int64 `json:"output_tokens"`
		} `json:"totals"`
	}
	if err := admin.call(ctx, "GET", "/api/v1/admin/usage/summary", nil, 200, &out); err != nil {
		return 0, 0, err
	}
	return out.Totals.Requests, out.Totals.OutputTokens, nil
}
