package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// RepoPath is the path of rel (slash-separated, relative to the repository
// root: "deploy/Caddyfile.multihost") from the test's working directory. The
// root is the nearest directory above it with a go.mod, so the tests read the
// repository's own files, never copies.
func RepoPath(t testing.TB, rel string) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return filepath.Join(root, filepath.FromSlash(rel))
}

// ReadRepoFile returns the contents of the repository file rel (see
// RepoPath).
func ReadRepoFile(t testing.TB, rel string) string {
	t.Helper()
	b, err := os.ReadFile(RepoPath(t, rel))
	if err != nil {
		t.Fatalf("read %s: %v", rel, err)
	}
	return string(b)
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("repository root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("repository root: %w", err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root: no go.mod above the working directory")
		}
		dir = parent
	}
}
