package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/fluxcode/fluxcode/bench/internal/report"
)

// Markers between which the latest results' summary (verdicts, c=32 rows) is kept in
// bench/README.md and in the repository's README.md; the whole tables are latest.md's.
const (
	latestBegin  = "<!-- latest results: begin (written by go run ./bench/cmd/bench) -->"
	latestEnd    = "<!-- latest results: end -->"
	summaryBegin = "<!-- bench:begin -->"
	summaryEnd   = "<!-- bench:end -->"
)

// maxQueryLen bounds a statement's text in the results: a batched ledger INSERT with
// hundreds of VALUES rows would otherwise fill megabytes.
const maxQueryLen = 300

// writeResults writes results.json, results.md and chart.png into dir, latest.md beside it,
// and, when the results go to bench/results, the summary into bench/README.md and README.md.
func writeResults(root, resultsDir, dir string, res *report.Results) error {
	res.TrimQueries(maxQueryLen)
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	var png bytes.Buffer
	if err := res.WriteChart(&png); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "chart.png"), png.Bytes(), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.md"), []byte(res.Markdown("chart.png")), 0o644); err != nil {
		return err
	}
	rel := filepath.Base(dir)
	latest := relink(res, rel).Markdown(rel + "/chart.png")
	if err := os.WriteFile(filepath.Join(resultsDir, "latest.md"), []byte(latest), 0o644); err != nil {
		return err
	}
	if filepath.Clean(resultsDir) != filepath.Join(root, "bench", "results") {
		return nil
	}
	fromReadme := res.Pointer("results/latest.md")
	if err := updateBetween(filepath.Join(root, "bench", "README.md"), latestBegin, latestEnd, fromReadme); err != nil {
		return err
	}
	summary := res.Summary("bench/results/latest.md", "bench/results/"+rel+"/chart.png", "bench/README.md")
	return updateBetween(filepath.Join(root, "README.md"), summaryBegin, summaryEnd, summary)
}

// updateBetween replaces what stands between the begin and end marker lines of a file.
func updateBetween(path, begin, end, body string) error {
	text, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("update %s: %w", path, err)
	}
	updated, err := replaceBetween(string(text), begin, end, body)
	if err != nil {
		return fmt.Errorf("update %s: %w", path, err)
	}
	return os.WriteFile(path, []byte(updated), 0o644)
}

// relink returns a copy of res whose profile files are named relative to another directory.
func relink(res *report.Results, prefix string) *report.Results {
	c := *res
	c.Profiles = make([]report.Profile, len(res.Profiles))
	for i, p := range res.Profiles {
		p.File = prefix + "/" + p.File
		c.Profiles[i] = p
	}
	return &c
}

// replaceBetween replaces what stands between the begin and end marker lines.
func replaceBetween(text, begin, end, body string) (string, error) {
	i := strings.Index(text, begin)
	j := strings.Index(text, end)
	if i < 0 || j < i {
		return "", fmt.Errorf("markers %q … %q not found", begin, end)
	}
	return text[:i+len(begin)] + "\n\n" + strings.TrimSpace(body) + "\n\n" + text[j:], nil
}
