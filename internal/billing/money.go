package billing

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"

	"github.com/fluxcode/fluxcode/internal/store"
)

// Units. Prices are kept in pico-dollars per token because list prices go
// down to fractions of a nano-dollar per token (0.01 USD per million tokens
// is 10 pico-dollars per token); amounts of money are nano-dollars
// (store.Nanos).
const (
	picoPerNano = 1_000
	nanoPerUSD  = 1_000_000_000
	ppmPerUnit  = 1_000_000
	picoDigits  = 12 // decimal places of a USD amount in pico-dollars
	nanoDigits  = 9
)

var errOverflow = errors.New("out of range")

// u128 is an unsigned 128-bit accumulator, so sums of token × rate
// products never wrap however large the counts are.
type u128 struct{ hi, lo uint64 }

var maxU128 = u128{math.MaxUint64, math.MaxUint64}

// addMul returns a + x×y, saturating at the largest u128.
func (a u128) addMul(x, y uint64) u128 {
	hi, lo := bits.Mul64(x, y)
	lo, carry := bits.Add64(a.lo, lo, 0)
	hi, carry = bits.Add64(a.hi, hi, carry)
	if carry != 0 {
		return maxU128
	}
	return u128{hi, lo}
}

// divRound returns a/d rounded half-up, saturating at math.MaxInt64.
func (a u128) divRound(d uint64) int64 {
	return int64(min(a.divRoundU(d), math.MaxInt64))
}

// divRoundU is a/d rounded half-up, saturating at math.MaxUint64.
func (a u128) divRoundU(d uint64) uint64 {
	lo, carry := bits.Add64(a.lo, d/2, 0)
	hi, carry := bits.Add64(a.hi, 0, carry)
	if carry != 0 || hi >= d {
		return math.MaxUint64
	}
	q, _ := bits.Div64(hi, lo, d)
	return q
}

// nonNegative turns a negative count or rate into zero: a metering bug must
// never turn into a credit.
func nonNegative(v int64) uint64 {
	if v < 0 {
		return 0
	}
	return uint64(v)
}

// ApplyMultiplier returns cost × ppm / 1,000,000 exactly, rounded half away
// from zero to a whole nano-dollar (half-up for the usual non-negative cost
// and multiplier), saturating at the int64 limits. 1,000,000 ppm is 1.0×.
func ApplyMultiplier(cost store.Nanos, ppm int64) store.Nanos {
	neg := (cost < 0) != (ppm < 0)
	hi, lo := bits.Mul64(absU64(int64(cost)), absU64(ppm))
	q := u128{hi, lo}.divRoundU(ppmPerUnit)
	if neg {
		if q > 1<<63 {
			return math.MinInt64
		}
		return store.Nanos(-int64(q)) // q == 1<<63 wraps to MinInt64, which is right
	}
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return store.Nanos(q)
}

func absU64(v int64) uint64 {
	if v < 0 {
		return -uint64(v) // also right for math.MinInt64
	}
	return uint64(v)
}

// FormatUSD renders nano-dollars as a decimal USD amount with all nine
// places: 1234567890 → "1.234567890", -5 → "-0.000000005".
func FormatUSD(n store.Nanos) string {
	var buf [32]byte
	b := buf[:0]
	if n < 0 {
		b = append(b, '-')
	}
	abs := absU64(int64(n))
	b = strconv.AppendUint(b, abs/nanoPerUSD, 10)
	frac := abs % nanoPerUSD
	b = append(b, '.')
	for div := uint64(nanoPerUSD / 10); div > 0; div /= 10 {
		b = append(b, byte('0'+frac/div%10))
	}
	return string(b)
}

// ParseUSD reads a plain decimal USD amount ("12", "-0.5", "+1.234567890")
// into nano-dollars. It refuses exponents, empty parts, and any precision
// finer than a nano-dollar (trailing zeros excepted): money is never
// silently rounded.
func ParseUSD(s string) (store.Nanos, error) {
	neg, digits, exp, err := splitDecimal(s, false)
	if err != nil {
		return 0, fmt.Errorf("parse USD amount %q: %w", s, err)
	}
	mag, dropped, err := scaleDigits(digits, exp+nanoDigits)
	if err != nil {
		return 0, fmt.Errorf("parse USD amount %q: %w", s, err)
	}
	if dropped {
		return 0, fmt.Errorf("parse USD amount %q: more than 9 decimal places", s)
	}
	if neg {
		return store.Nanos(-int64(mag)), nil
	}
	return store.Nanos(mag), nil
}

// splitDecimal splits a decimal number's text into its sign and the digits
// d and exponent e with value = d × 10^e. With allowExp it accepts JSON's
// exponent form (3e-06); a leading "+" is accepted only without it.
func splitDecimal(s string, allowExp bool) (neg bool, digits string, exp int, err error) {
	i := 0
	if i < len(s) && (s[i] == '-' || (s[i] == '+' && !allowExp)) {
		neg = s[i] == '-'
		i++
	}
	start := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	intPart := s[start:i]
	var fracPart string
	if i < len(s) && s[i] == '.' {
		i++
		fs := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		fracPart = s[fs:i]
		if fracPart == "" {
			return false, "", 0, errors.New("no digits after the decimal point")
		}
	}
	if intPart == "" && (allowExp || fracPart == "") {
		return false, "", 0, errors.New("not a decimal number")
	}
	if i < len(s) && allowExp && (s[i] == 'e' || s[i] == 'E') {
		i++
		es := i
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		ds := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i == ds || i-ds > 4 {
			return false, "", 0, errors.New("bad exponent")
		}
		exp, _ = strconv.Atoi(s[es:i]) // at most 4 digits: cannot fail
	}
	if i != len(s) {
		return false, "", 0, fmt.Errorf("unexpected %q", s[i:])
	}
	return neg, intPart + fracPart, exp - len(fracPart), nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// scaleDigits returns digits × 10^exp as an integer no larger than
// math.MaxInt64, rounding half-up when exp drops digits; dropped reports
// whether any dropped digit was non-zero.
func scaleDigits(digits string, exp int) (mag uint64, dropped bool, err error) {
	for len(digits) > 0 && digits[0] == '0' {
		digits = digits[1:]
	}
	if digits == "" {
		return 0, false, nil
	}
	keep := len(digits) + exp // how many leading digits stay whole
	if keep > 19 {
		return 0, false, errOverflow
	}
	var roundUp bool
	switch {
	case keep <= 0:
		dropped, roundUp = true, keep == 0 && digits[0] >= '5'
		digits = ""
	case exp < 0:
		rest := digits[keep:]
		roundUp = rest[0] >= '5'
		for i := 0; i < len(rest); i++ {
			dropped = dropped || rest[i] != '0'
		}
		digits = digits[:keep]
	}
	for i := 0; i < len(digits); i++ {
		d := uint64(digits[i] - '0')
		if mag > (math.MaxInt64-d)/10 {
			return 0, false, errOverflow
		}
		mag = mag*10 + d
	}
	for ; exp > 0; exp-- {
		if mag > math.MaxInt64/10 {
			return 0, false, errOverflow
		}
		mag *= 10
	}
	if roundUp {
		mag++
	}
	if mag > math.MaxInt64 {
		return 0, false, errOverflow
	}
	return mag, dropped, nil
}
