package api

import (
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"strings"

	"github.com/fluxcode/fluxcode/internal/store"
)

// Money crosses the API as a decimal string of US dollars with nine decimals ("12.500000000"),
// so no client float ever rounds it; rate multipliers as decimal strings with six.
const (
	moneyScale      = 9
	multiplierScale = 6
)

// money is an amount in JSON: decimal USD string in, decimal USD string out.
type money store.Nanos

func (m money) MarshalJSON() ([]byte, error) {
	return []byte(strconv.Quote(formatDecimal(int64(m), moneyScale))), nil
}

func (m *money) UnmarshalJSON(b []byte) error {
	v, err := unmarshalDecimal(b, moneyScale, reflect.TypeFor[money]())
	if err == nil {
		*m = money(v)
	}
	return err
}

// multiplier is a rate multiplier in millionths, a decimal string in JSON ("1.5").
type multiplier int64

func (m multiplier) MarshalJSON() ([]byte, error) {
	return []byte(strconv.Quote(formatDecimal(int64(m), multiplierScale))), nil
}

func (m *multiplier) UnmarshalJSON(b []byte) error {
	v, err := unmarshalDecimal(b, multiplierScale, reflect.TypeFor[multiplier]())
	if err == nil {
		*m = multiplier(v)
	}
	return err
}

func unmarshalDecimal(b []byte, scale int, t reflect.Type) (int64, error) {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return 0, &json.UnmarshalTypeError{Value: "non-string", Type: t}
	}
	v, ok := parseDecimal(s, scale)
	if !ok {
		return 0, &json.UnmarshalTypeError{Value: "string " + strconv.Quote(s), Type: t}
	}
	return v, nil
}

// parseDecimal reads an optionally signed decimal ("12", "-0.5", "3.000000001") exactly into
// an integer count of 10^-scale units. More decimals than scale, exponents, blanks and
// overflow are refused rather than rounded.
func parseDecimal(s string, scale int) (int64, bool) {
	neg := false
	if rest, ok := strings.CutPrefix(s, "-"); ok {
		neg, s = true, rest
	}
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || (hasDot && frac == "") || len(frac) > scale || !allDigits(whole) || !allDigits(frac) {
		return 0, false
	}
	frac += strings.Repeat("0", scale-len(frac))
	w, err := strconv.ParseUint(whole, 10, 64)
	if err != nil {
		return 0, false
	}
	f, _ := strconv.ParseUint(frac, 10, 64) // at most scale digits: cannot fail
	unit := uint64(math.Pow10(scale))
	if w > (math.MaxInt64-f)/unit {
		return 0, false
	}
	v := int64(w*unit + f)
	if neg {
		v = -v
	}
	return v, true
}

func allDigits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// formatDecimal writes v units of 10^-scale as a decimal with exactly scale decimals.
func formatDecimal(v int64, scale int) string {
	u := uint64(v)
	sign := ""
	if v < 0 {
		sign, u = "-", uint64(-(v+1))+1 // safe for MinInt64
	}
	unit := uint64(math.Pow10(scale))
	frac := strconv.FormatUint(u%unit, 10)
	return sign + strconv.FormatUint(u/unit, 10) + "." + strings.Repeat("0", scale-len(frac)) + frac
}
