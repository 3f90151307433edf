package config_test

import (
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/config"
	"github.com/fluxcode/fluxcode/internal/gateway"
)

// TestGatewayDefaultsAreTheGateways: with nothing set, the configuration hands the gateway
// exactly gateway.Default(), and the variable table (which the README's table is rendered
// from) shows those same values. One table: a default changed in gateway.Default() changes
// the variable's default and its documentation with it.
func TestGatewayDefaultsAreTheGateways(t *testing.T) {
	c, err := config.Load(func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if want := gateway.Default(); !reflect.DeepEqual(c.Gateway, want) {
		t.Errorf("configured gateway defaults\n%+v\nwant gateway.Default()\n%+v", c.Gateway, want)
	}
	d := gateway.Default()
	for name, want := range map[string]any{
		"GATEWAY_STICKY_TTL":           d.StickyTTL,
		"GATEWAY_SLOT_TTL":             d.SlotTTL,
		"GATEWAY_RATE_LIMIT_COOLDOWN":  d.RateLimitCooldown,
		"UPSTREAM_HEADER_TIMEOUT":      d.HeaderTimeout,
		"GATEWAY_MAX_ACCOUNT_SWITCHES": strconv.Itoa(d.MaxAccountSwitches),
		"GATEWAY_WAIT_QUEUE_MAX":       strconv.Itoa(d.WaitQueueMax),
		"MAX_BODY_BYTES":               strconv.FormatInt(d.MaxBodyBytes, 10),
		"ALLOW_UNPRICED_MODELS":        "false",
	} {
		v := varNamed(t, name)
		var got any = v.Default
		if _, ok := want.(time.Duration); ok {
			got, _ = time.ParseDuration(v.Default)
		}
		if got != want {
			t.Errorf("%s default %q, want %v (gateway.Default())", name, v.Default, want)
		}
	}
	// A set variable still wins.
	c, err = config.Load(func(name string) (string, bool) {
		return map[string]string{"GATEWAY_SLOT_TTL": "12s", "ALLOW_UNPRICED_MODELS": "true"}[name], true
	})
	if err != nil || c.Gateway.SlotTTL.Seconds() != 12 || !c.Gateway.AllowUnpricedModels {
		t.Errorf("set variables: %v %v %v", err, c.Gateway.SlotTTL, c.Gateway.AllowUnpricedModels)
	}
}

func varNamed(t *testing.T, name string) config.Var {
	t.Helper()
	for _, v := range config.Vars() {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no variable %s", name)
	return config.Var{}
}
