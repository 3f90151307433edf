package api

import "testing"

// TestThrottleName: the take-back warning names the counter it failed to lower (a redeem
// count is not a sign-in one), never the hashed user or address.
func TestThrottleName(t *testing.T) {
	for key, want := range map[string]string{
		throttleKey(redeemThrottleKey, "42"):         "redeem:user",
		throttleKey("login:email:", "u@example.com"): "login:email",
		throttleKey("login:addr:", "192.0.2.1"):      "login:addr",
	} {
		if got := throttleName(key); got != want {
			t.Errorf("throttleName(%q) = %q, want %q", key, got, want)
		}
	}
}
