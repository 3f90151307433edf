package config

import (
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
)

// redacted is what a secret value shows as.
const redacted = "***"

// Redacted renders the effective configuration, one variable a line with where its value
// came from, secrets replaced by "***" (URLs keep all but their password). Safe to print.
func (c Config) Redacted() string {
	var b strings.Builder
	fmt.Fprintf(&b, "mode: %s\n", c.Mode())
	if c.ConfigFile != "" {
		fmt.Fprintf(&b, "config file: %s\n", c.ConfigFile)
	}
	tw := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
	for _, v := range Vars() {
		s := c.settings[v.Name]
		fmt.Fprintf(tw, "%s=%s\t# %s\n", v.Name, v.redact(s.raw), s.source)
	}
	tw.Flush()
	return b.String()
}

// redact hides a secret value. An unset secret shows as empty, so operators can see it is
// missing without learning anything else.
func (v Var) redact(raw string) string {
	if raw == "" || !v.Secret {
		return raw
	}
	if v.redactURL {
		u, err := url.Parse(raw)
		if err != nil {
			return redacted
		}
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxx")
			return strings.Replace(u.String(), ":xxx@", ":"+redacted+"@", 1)
		}
		q := u.Query() // libpq also accepts ?password=
		if q.Has("password") {
			q.Set("password", "xxx")
			u.RawQuery = strings.Replace(q.Encode(), "password=xxx", "password="+redacted, 1)
		}
		return u.String()
	}
	return redacted
}

// WriteMarkdown writes the variable table (name, type, default, description) as Markdown,
// for the README.
func WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	b.WriteString("| Variable | Type | Default | Description |\n|---|---|---|---|\n")
	b.WriteString("| `CONFIG_FILE` | path | | Optional YAML file: flat keys, the lower-case variable names (`server_port: 8080`). The environment wins over it. |\n")
	for _, v := range Vars() {
		doc := v.Doc
		if v.File {
			doc += fmt.Sprintf(" `%s_FILE` may name a file holding it.", v.Name)
		}
		def := ""
		if v.Default != "" {
			def = "`" + v.Default + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", v.Name, v.Type(), def, strings.ReplaceAll(doc, "|", `\|`))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
