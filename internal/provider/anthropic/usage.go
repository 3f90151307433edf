package anthropic

import (
	"github.com/tidwall/gjson"

	"github.com/fluxcode/fluxcode/internal/provider"
)

// meter reads usage from a Messages stream: input and cache counts from message_start, the
// cumulative output (and any input/cache values, which override) from each message_delta.
// Every other event is skipped after one comparison of its name.
type meter struct {
	usage    provider.Usage
	complete bool
}

// NewMeter implements provider.Provider.
func (*Provider) NewMeter() provider.Meter { return &meter{} }

func (m *meter) Event(name, data []byte) bool {
	if len(name) == 0 && len(data) > 0 {
		// Upstreams that omit "event:" lines still type every payload.
		name = []byte(gjson.GetBytes(data, "type").Str)
	}
	switch string(name) {
	case "message_start":
		applyUsage(&m.usage, gjson.GetBytes(data, "message.usage"))
	case "message_delta":
		applyUsage(&m.usage, gjson.GetBytes(data, "usage"))
	case "message_stop":
		m.complete = true
	case "error":
		return true
	}
	return false
}

func (m *meter) Usage() provider.Usage { return m.usage }
func (m *meter) Complete() bool        { return m.complete }

// JSONUsage implements provider.Provider.
func (*Provider) JSONUsage(body []byte) provider.Usage {
	var u provider.Usage
	applyUsage(&u, gjson.GetBytes(body, "usage"))
	return u
}

// applyUsage overwrites u with every count the usage object carries; absent and null fields
// leave u unchanged, so a message_delta that only reports output keeps message_start's input.
// Cache creation is split 5m/1h from the cache_creation object; tokens the split does not
// account for are billed as 5m writes, the default TTL.
func applyUsage(u *provider.Usage, usage gjson.Result) {
	if !usage.IsObject() {
		return
	}
	var total, e5m, e1h gjson.Result
	usage.ForEach(func(key, value gjson.Result) bool {
		switch key.Str {
		case "input_tokens":
			setCount(&u.Input, value)
		case "output_tokens":
			setCount(&u.Output, value)
		case "cache_read_input_tokens":
			setCount(&u.CacheRead, value)
		case "cache_creation_input_tokens":
			total = value
		case "cache_creation":
			e5m = value.Get("ephemeral_5m_input_tokens")
			e1h = value.Get("ephemeral_1h_input_tokens")
		}
		return true
	})
	if total.Type != gjson.Number && e5m.Type != gjson.Number && e1h.Type != gjson.Number {
		return
	}
	if e5m.Type == gjson.Number || e1h.Type == gjson.Number {
		u.CacheCreation5m, u.CacheCreation1h = e5m.Int(), e1h.Int()
		if rest := total.Int() - u.CacheCreation5m - u.CacheCreation1h; rest > 0 {
			u.CacheCreation5m += rest
		}
		return
	}
	// A total without its split (message_delta carries only the total): keep the split
	// already known from message_start and put any difference on 5m.
	if t := total.Int(); u.CacheCreation1h <= t {
		u.CacheCreation5m = t - u.CacheCreation1h
	} else {
		u.CacheCreation5m, u.CacheCreation1h = t, 0
	}
}

func setCount(dst *int64, v gjson.Result) {
	if v.Type == gjson.Number {
		*dst = v.Int()
	}
}
