package app

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/fluxcode/fluxcode/internal/config"
)

// TestRedisLogScrubsAndLevels: secrets a go-redis line might quote are hidden, routine
// Sentinel news is info, anything else a warning.
func TestRedisLogScrubsAndLevels(t *testing.T) {
	cfg, err := config.Load(config.MapEnv(map[string]string{
		"DATABASE_HOST": "db", "ENCRYPTION_KEY": strings.Repeat("ab", 32),
		"REDIS_SENTINEL_ADDRS": "127.0.0.1:26379", "REDIS_MASTER_NAME": "m",
		"REDIS_PASSWORD": "master-SECRET", "REDIS_SENTINEL_PASSWORD": "sentinel-SECRET",
	}))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	l := &redisLog{log: slog.New(slog.NewJSONHandler(&buf, nil)), scrub: func(s string) string { return scrubSecrets(cfg, s) }}
	l.Printf(context.Background(), "redis: auth failed with %s then %s\n", "master-SECRET", "sentinel-SECRET")
	l.Printf(nil, "sentinel: new master=%q addr=%q", "m", "127.0.0.1:6379") // a nil context must not crash the handler

	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("record %q: %v", line, err)
		}
		recs = append(recs, r)
	}
	if len(recs) != 2 {
		t.Fatalf("records: %s", buf.String())
	}
	if recs[0]["level"] != "WARN" || recs[0]["msg"] != "auth failed with *** then ***" || recs[0]["component"] != "go-redis" {
		t.Errorf("first record: %v", recs[0])
	}
	if recs[1]["level"] != "INFO" || !strings.HasPrefix(recs[1]["msg"].(string), "sentinel: new master") {
		t.Errorf("second record: %v", recs[1])
	}
	if strings.Contains(buf.String(), "SECRET") {
		t.Errorf("a secret reached the log:\n%s", buf.String())
	}
}
