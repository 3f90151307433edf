package api

import "net/http"

// docRoutes describes every route of the table in api.go, in its order. A route added there
// needs its line here: TestOpenAPI fails until the two agree, and until every body described
// here is the one the handler decodes.
func docRoutes() []docOp {
	page := []string{"page", "page_size"}
	with := func(extra ...string) []string { return append(append([]string{}, page...), extra...) }
	usage := []string{"key_id", "model", "from", "to"}
	adminUsage := append([]string{"user_id", "account_id", "group_id"}, usage...)
	const created = http.StatusCreated
	const none = http.StatusNoContent

	return []docOp{
		// Public.
		{pattern: "POST /api/v1/auth/register", summary: "Sign up (when registration is open)", access: public,
			body: credentialsReq{}, status: created, resp: tokenBody{}},
		{pattern: "POST /api/v1/auth/login", summary: "Sign in with e-mail and password", access: public,
			body: credentialsReq{}, resp: tokenBody{},
			desc: "Answers a session token; with two-factor sign-in enabled it answers a challenge " +
				"(two_factor_required, challenge) to finish at /auth/login/2fa instead."},
		{pattern: "POST /api/v1/auth/logout", summary: "Sign out, revoking every session of the user", access: signedIn, status: none},
		{pattern: "POST /api/v1/auth/login/2fa", summary: "Finish a sign-in with the second factor", access: public,
			body: secondFactorReq{}, resp: tokenBody{}},
		{pattern: "GET /api/v1/settings/public", summary: "Site name and whether sign-up is open", access: public,
			resp: publicSettingsView{}},
		{pattern: "GET /api/v1/openapi.json", summary: "This document", access: public,
			resp: map[string]any{}},

		// The signed-in user.
		{pattern: "GET /api/v1/me", summary: "The signed-in user", access: signedIn, resp: meView{}},
		{pattern: "PATCH /api/v1/me", summary: "Change one's e-mail (the password confirms it)", access: signedIn,
			body: updateMeReq{}, resp: userView{}},
		{pattern: "POST /api/v1/me/password", summary: "Change one's password; answers a fresh session", access: signedIn,
			body: changePasswordReq{}, resp: tokenBody{}},
		{pattern: "GET /api/v1/me/2fa", summary: "Two-factor sign-in state", access: signedIn, resp: twoFactorStatus{}},
		{pattern: "POST /api/v1/me/2fa/enrol", summary: "Start enrolling a TOTP device", access: signedIn,
			body: factorReq{}, optionalBody: true, resp: enrolBody{}},
		{pattern: "POST /api/v1/me/2fa/confirm", summary: "Confirm the enrolment with a code; answers recovery codes",
			access: signedIn, body: codeReq{}, resp: confirmBody{}},
		{pattern: "POST /api/v1/me/2fa/recovery-codes", summary: "Replace the recovery codes", access: signedIn,
			body: factorReq{}, resp: confirmBody{}},
		{pattern: "POST /api/v1/me/2fa/disable", summary: "Turn two-factor sign-in off", access: signedIn,
			body: disableReq{}, status: none},
		{pattern: "GET /api/v1/me/subscriptions", summary: "One's subscriptions", access: signedIn,
			query: page, resp: pageBody[subscriptionView]{}},
		{pattern: "GET /api/v1/groups", summary: "The groups one may bind a key to", access: signedIn,
			resp: listBody[groupView]{}},
		{pattern: "GET /api/v1/keys", summary: "One's API keys", access: signedIn,
			query: with("search", "status", "group_id"), resp: pageBody[keyView]{}},
		{pattern: "POST /api/v1/keys", summary: "Create an API key; the key is shown in this answer only", access: signedIn,
			body: createKeyReq{}, status: created, resp: createdKeyView{}},
		{pattern: "GET /api/v1/keys/{id}", summary: "One of one's API keys", access: signedIn, resp: keyView{}},
		{pattern: "PATCH /api/v1/keys/{id}", summary: "Change one of one's API keys", access: signedIn,
			body: updateKeyReq{}, resp: keyView{},
			desc: "allowed_models, allowed_ips, rpm_limit and tpm_limit are for admins; a user sending them is refused."},
		{pattern: "DELETE /api/v1/keys/{id}", summary: "Delete one of one's API keys", access: signedIn, status: none},
		{pattern: "GET /api/v1/usage", summary: "One's ledger rows, newest first", access: signedIn,
			query: with(usage...), resp: pageBody[usageView]{}},
		{pattern: "GET /api/v1/usage/summary", summary: "One's usage totals, per day and model", access: signedIn,
			query: usage, resp: summaryBody{}},
		{pattern: "POST /api/v1/me/redeem", summary: "Redeem a code", access: signedIn,
			body: redeemReq{}, resp: redeemedBody{}},

		// Admin: users, their balance, keys and subscriptions.
		{pattern: "GET /api/v1/admin/users", summary: "List users", access: adminOnly,
			query: with("search", "status", "role"), resp: pageBody[userView]{}},
		{pattern: "POST /api/v1/admin/users", summary: "Create a user", access: adminOnly,
			body: createUserReq{}, status: created, resp: userView{}},
		{pattern: "GET /api/v1/admin/users/{id}", summary: "A user, with the exclusive groups they may use", access: adminOnly,
			resp: userAccessView{}},
		{pattern: "PATCH /api/v1/admin/users/{id}", summary: "Change a user", access: adminOnly,
			body: updateUserReq{}, resp: userAccessView{}},
		{pattern: "DELETE /api/v1/admin/users/{id}", summary: "Delete a user and their keys", access: adminOnly, status: none},
		{pattern: "POST /api/v1/admin/users/{id}/balance", summary: "Credit (positive) or debit (negative) a balance",
			access: adminOnly, body: balanceReq{}, resp: balanceBody{}},
		{pattern: "GET /api/v1/admin/users/{id}/transactions", summary: "A user's balance transactions", access: adminOnly,
			query: page, resp: pageBody[transactionView]{}},
		{pattern: "GET /api/v1/admin/users/{id}/keys", summary: "A user's API keys", access: adminOnly,
			query: with("search", "status", "group_id"), resp: pageBody[keyView]{}},
		{pattern: "POST /api/v1/admin/users/{id}/keys", summary: "Create an API key for a user", access: adminOnly,
			body: createKeyReq{}, status: created, resp: createdKeyView{}},
		{pattern: "GET /api/v1/admin/users/{id}/subscriptions", summary: "A user's subscriptions", access: adminOnly,
			query: page, resp: pageBody[subscriptionView]{}},
		{pattern: "POST /api/v1/admin/users/{id}/subscriptions", summary: "Subscribe a user to a subscription group",
			access: adminOnly, body: assignSubscriptionReq{}, status: created, resp: subscriptionView{}},
		{pattern: "PATCH /api/v1/admin/users/{id}/subscriptions/{group_id}", summary: "Change or extend a subscription",
			access: adminOnly, body: updateSubscriptionReq{}, resp: subscriptionView{}},
		{pattern: "DELETE /api/v1/admin/users/{id}/subscriptions/{group_id}", summary: "Revoke a subscription",
			access: adminOnly, status: none},
		{pattern: "GET /api/v1/admin/subscriptions", summary: "Every subscription", access: adminOnly,
			query: with("user_id"), resp: pageBody[subscriptionView]{}},

		// Admin: redeem codes.
		{pattern: "GET /api/v1/admin/redeem-codes", summary: "List redeem codes", access: adminOnly,
			query: with("search", "status", "group_id"), resp: pageBody[redeemCodeView]{}},
		{pattern: "POST /api/v1/admin/redeem-codes", summary: "Issue a batch of codes; the codes are shown in this answer only",
			access: adminOnly, body: createRedeemCodesReq{}, status: created, resp: listBody[redeemCodeView]{}},
		{pattern: "GET /api/v1/admin/redeem-codes/export", summary: "Every redeem code as CSV (without the codes)",
			access: adminOnly, csv: true},
		{pattern: "GET /api/v1/admin/redeem-codes/{id}", summary: "A redeem code", access: adminOnly, resp: redeemCodeView{}},
		{pattern: "POST /api/v1/admin/redeem-codes/{id}/disable", summary: "Disable an unused code", access: adminOnly,
			resp: redeemCodeView{}},

		// Admin: keys of any user.
		{pattern: "GET /api/v1/admin/keys", summary: "Every API key", access: adminOnly,
			query: with("user_id", "search", "status", "group_id"), resp: pageBody[keyView]{}},
		{pattern: "GET /api/v1/admin/keys/{id}", summary: "An API key", access: adminOnly, resp: keyView{}},
		{pattern: "PATCH /api/v1/admin/keys/{id}", summary: "Change an API key, its admin limits and policy", access: adminOnly,
			body: updateKeyReq{}, resp: keyView{}},
		{pattern: "DELETE /api/v1/admin/keys/{id}", summary: "Delete an API key", access: adminOnly, status: none},

		// Admin: groups, accounts, proxies, error rules, settings.
		{pattern: "GET /api/v1/admin/groups", summary: "List groups", access: adminOnly,
			query: with("search", "status", "platform"), resp: pageBody[groupView]{}},
		{pattern: "POST /api/v1/admin/groups", summary: "Create a group", access: adminOnly,
			body: groupReq{}, status: created, resp: groupView{}},
		{pattern: "GET /api/v1/admin/groups/{id}", summary: "A group", access: adminOnly, resp: groupView{}},
		{pattern: "PATCH /api/v1/admin/groups/{id}", summary: "Change a group", access: adminOnly,
			body: groupReq{}, resp: groupView{}},
		{pattern: "DELETE /api/v1/admin/groups/{id}", summary: "Delete a group without keys", access: adminOnly, status: none},
		{pattern: "GET /api/v1/admin/accounts", summary: "List upstream accounts", access: adminOnly,
			query: with("search", "status", "platform", "group_id"), resp: pageBody[accountView]{}},
		{pattern: "POST /api/v1/admin/accounts", summary: "Create an upstream account", access: adminOnly,
			body: accountReq{}, status: created, resp: accountView{},
			desc: "credentials are write-only: answers show which credential fields are set, never their values."},
		{pattern: "GET /api/v1/admin/accounts/{id}", summary: "An upstream account", access: adminOnly, resp: accountView{}},
		{pattern: "PATCH /api/v1/admin/accounts/{id}", summary: "Change an upstream account", access: adminOnly,
			body: accountReq{}, resp: accountView{},
			desc: "A change of base_url or proxy_id needs the credentials given again."},
		{pattern: "DELETE /api/v1/admin/accounts/{id}", summary: "Delete an upstream account", access: adminOnly, status: none},
		{pattern: "POST /api/v1/admin/accounts/{id}/recover", summary: "Clear an account's error status and health marks",
			access: adminOnly, resp: accountView{}},
		{pattern: "POST /api/v1/admin/accounts/{id}/refresh", summary: "Renew a subscription login's access token now",
			access: adminOnly, resp: accountView{}},
		{pattern: "POST /api/v1/admin/logins/claude/start", summary: "Start a Claude sign-in; answers the URL to open",
			access: adminOnly, body: loginStartReq{}, resp: loginStartView{}},
		{pattern: "POST /api/v1/admin/logins/claude/finish", summary: "Finish a Claude sign-in and create its account",
			access: adminOnly, body: loginFinishReq{}, status: created, resp: loginFinishView{}},
		{pattern: "GET /api/v1/admin/jobs", summary: "The last run of every background job", access: adminOnly,
			resp: listBody[jobRunView]{}},
		{pattern: "GET /api/v1/admin/proxies", summary: "List proxies", access: adminOnly,
			query: page, resp: pageBody[proxyView]{}},
		{pattern: "POST /api/v1/admin/proxies", summary: "Create a proxy", access: adminOnly,
			body: proxyReq{}, status: created, resp: proxyView{}},
		{pattern: "GET /api/v1/admin/proxies/{id}", summary: "A proxy", access: adminOnly, resp: proxyView{}},
		{pattern: "PATCH /api/v1/admin/proxies/{id}", summary: "Change a proxy", access: adminOnly,
			body: proxyReq{}, resp: proxyView{}},
		{pattern: "DELETE /api/v1/admin/proxies/{id}", summary: "Delete a proxy no account uses", access: adminOnly, status: none},
		{pattern: "GET /api/v1/admin/error-rules", summary: "List error rules", access: adminOnly,
			resp: listBody[errorRuleView]{}},
		{pattern: "POST /api/v1/admin/error-rules", summary: "Create an error rule (an upstream answer that rests an account)",
			access: adminOnly, body: errorRuleReq{}, status: created, resp: errorRuleView{}},
		{pattern: "DELETE /api/v1/admin/error-rules/{id}", summary: "Delete an error rule", access: adminOnly, status: none},
		{pattern: "DELETE /api/v1/admin/users/{id}/2fa", summary: "Reset a user's two-factor sign-in", access: adminOnly,
			status: none},
		{pattern: "GET /api/v1/admin/audit", summary: "The audit log of admin changes, newest first", access: adminOnly,
			query: with("actor_id", "actor", "action", "target_type", "target_id", "from", "to"), resp: pageBody[auditView]{}},
		{pattern: "GET /api/v1/admin/admin-keys", summary: "List admin API keys", access: adminOnly,
			query: page, resp: pageBody[adminKeyView]{}},
		{pattern: "POST /api/v1/admin/admin-keys", summary: "Create an admin API key; the key is shown in this answer only",
			access: adminOnly, body: createAdminKeyReq{}, status: created, resp: createdAdminKeyView{}},
		{pattern: "DELETE /api/v1/admin/admin-keys/{id}", summary: "Revoke an admin API key", access: adminOnly, status: none},
		{pattern: "GET /api/v1/admin/settings", summary: "Every admin setting", access: adminOnly, resp: settingsView{}},
		{pattern: "PUT /api/v1/admin/settings", summary: "Save the settings present in the body", access: adminOnly,
			body: settingsReq{}, resp: settingsView{}},

		// Admin: the ledger.
		{pattern: "GET /api/v1/admin/usage", summary: "Ledger rows, newest first", access: adminOnly,
			query: with(adminUsage...), resp: pageBody[adminUsageView]{}},
		{pattern: "GET /api/v1/admin/usage/summary", summary: "Usage totals, per day and model", access: adminOnly,
			query: adminUsage, resp: summaryBody{}},
		{pattern: "GET /api/v1/admin/usage/export", summary: "Ledger rows as CSV", access: adminOnly,
			query: adminUsage, csv: true},
		{pattern: "GET /api/v1/admin/usage/outcomes", summary: "Gateway requests per day and outcome, billed or not",
			access: adminOnly, query: []string{"from", "to"}, resp: outcomesBody{}},
		{pattern: "GET /api/v1/admin/dashboard", summary: "Accounts' live load and health, counts of users and groups",
			access: adminOnly, resp: dashboardView{}},
	}
}

// outcomesBody is the answer of GET /admin/usage/outcomes.
type outcomesBody struct {
	Daily []dayOutcomesView `json:"daily"`
}
