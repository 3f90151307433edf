package api

import (
	"math"
	"testing"
)

func TestParseDecimal(t *testing.T) {
	good := map[string]int64{
		"0":                    0,
		"12":                   12_000_000_000,
		"12.5":                 12_500_000_000,
		"12.500000000":         12_500_000_000,
		"-3.25":                -3_250_000_000,
		"0.000000001":          1,
		"9223372036.854775807": math.MaxInt64,
	}
	for s, want := range good {
		if got, ok := parseDecimal(s, moneyScale); !ok || got != want {
			t.Errorf("parseDecimal(%q) = %d, %v; want %d", s, got, ok, want)
		}
		if back := formatDecimal(want, moneyScale); back != formatDecimal(mustParse(t, back), moneyScale) {
			t.Errorf("format/parse of %d does not round-trip: %q", want, back)
		}
	}
	for _, s := range []string{"", "-", ".5", "5.", "1e3", "0.0000000001", "+1", " 1", "1,5", "abc",
		"9223372036.854775808", "99999999999999999999", "--1", "1.2.3"} {
		if got, ok := parseDecimal(s, moneyScale); ok {
			t.Errorf("parseDecimal(%q) = %d, want refusal", s, got)
		}
	}
}

func mustParse(t *testing.T, s string) int64 {
	t.Helper()
	v, ok := parseDecimal(s, moneyScale)
	if !ok {
		t.Fatalf("parseDecimal(%q) refused", s)
	}
	return v
}

func TestFormatDecimal(t *testing.T) {
	cases := map[int64]string{
		0:              "0.000000000",
		12_500_000_000: "12.500000000",
		-1:             "-0.000000001",
		math.MinInt64:  "-9223372036.854775808",
		math.MaxInt64:  "9223372036.854775807",
	}
	for v, want := range cases {
		if got := formatDecimal(v, moneyScale); got != want {
			t.Errorf("formatDecimal(%d) = %q, want %q", v, got, want)
		}
	}
	if got := formatDecimal(1_500_000, multiplierScale); got != "1.500000" {
		t.Errorf("multiplier 1.5 formats as %q", got)
	}
}
