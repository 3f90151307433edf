package api

import (
	"net/netip"
	"strings"

	"github.com/fluxcode/fluxcode/internal/store"
)

// Bounds of a key's policy lists.
const (
	maxPolicyEntries = 100
	maxPatternLen    = 200
	maxRateLimit     = 1 << 40
)

// keyPolicyReq is the part of a key update that sets its policy (gateway/policy.go). Only an
// admin sets it: it bounds what the key's owner may do.
type keyPolicyReq struct {
	AllowedModels *[]string `json:"allowed_models"` // exact names or prefixes ending in "*"; [] = any
	AllowedIPs    *[]string `json:"allowed_ips"`    // IPs or CIDRs; [] = any
	RPMLimit      *int64    `json:"rpm_limit"`      // requests per minute; 0 = none
	TPMLimit      *int64    `json:"tpm_limit"`      // tokens per minute; 0 = none
}

// apply validates p and writes it into k.
func (p *keyPolicyReq) apply(k *store.APIKey, byAdmin bool) error {
	if !byAdmin && (p.AllowedModels != nil || p.AllowedIPs != nil || p.RPMLimit != nil || p.TPMLimit != nil) {
		return &apiError{kind: kindForbidden, message: "only an administrator sets a key's models, addresses and rate limits"}
	}
	if p.AllowedModels != nil {
		models, err := checkModelPatterns("allowed_models", *p.AllowedModels)
		if err != nil {
			return err
		}
		k.AllowedModels = models
	}
	if p.AllowedIPs != nil {
		nets, err := checkNetworks("allowed_ips", *p.AllowedIPs)
		if err != nil {
			return err
		}
		k.AllowedIPs = nets
	}
	return applyRates(&k.RPMLimit, &k.TPMLimit, p.RPMLimit, p.TPMLimit)
}

// applyRates validates and sets a pair of per-minute limits.
func applyRates(rpm, tpm *int64, newRPM, newTPM *int64) error {
	for _, f := range []struct {
		field string
		dst   *int64
		v     *int64
	}{{"rpm_limit", rpm, newRPM}, {"tpm_limit", tpm, newTPM}} {
		if f.v == nil {
			continue
		}
		if *f.v < 0 || *f.v > maxRateLimit {
			return invalid(f.field, "%s must be from 0 (none) to %d", f.field, int64(maxRateLimit))
		}
		*f.dst = *f.v
	}
	return nil
}

// checkModelPatterns accepts model names and prefixes ending in one "*" ("claude-sonnet-*").
func checkModelPatterns(field string, in []string) ([]string, error) {
	if len(in) > maxPolicyEntries {
		return nil, invalid(field, "%s holds at most %d entries", field, maxPolicyEntries)
	}
	out := make([]string, 0, len(in))
	for _, m := range in {
		m = strings.TrimSpace(m)
		star := strings.Index(m, "*")
		if m == "" || len(m) > maxPatternLen || strings.ContainsAny(m, "\n\r\t ") || star >= 0 && star != len(m)-1 {
			return nil, invalid(field, "%q is not a model name or a prefix ending in *", m)
		}
		out = append(out, m)
	}
	return out, nil
}

// checkNetworks accepts IP addresses and CIDR prefixes, stored in canonical form.
func checkNetworks(field string, in []string) ([]string, error) {
	if len(in) > maxPolicyEntries {
		return nil, invalid(field, "%s holds at most %d entries", field, maxPolicyEntries)
	}
	out := make([]string, 0, len(in))
	for _, s := range in {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked().String())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, invalid(field, "%q is neither an IP address nor a CIDR prefix", s)
		}
		out = append(out, a.Unmap().String())
	}
	return out, nil
}
