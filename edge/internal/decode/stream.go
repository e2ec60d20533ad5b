package decode

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// DefaultStreamPrefix is the stream prefix template used when none is set:
// the MQTT topic.
const DefaultStreamPrefix = "{topic}"

// prefixTemplate expands a stream prefix template such as "{topic}" or
// "cameras/{camera}".
type prefixTemplate struct {
	tmpl  string
	parts []prefixPart
}

// prefixPart is a literal, or a placeholder when v is set.
type prefixPart struct{ lit, v string }

// newPrefixTemplate checks tmpl (empty means DefaultStreamPrefix), allowing
// only the placeholders in vars.
func newPrefixTemplate(tmpl string, vars ...string) (prefixTemplate, error) {
	if tmpl == "" {
		tmpl = DefaultStreamPrefix
	}
	if err := CheckStreamPrefix(tmpl, vars...); err != nil {
		return prefixTemplate{}, err
	}
	p := prefixTemplate{tmpl: tmpl}
	for rest := tmpl; rest != ""; {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			p.parts = append(p.parts, prefixPart{lit: rest})
			break
		}
		j := strings.IndexByte(rest, '}') // checked: after i
		if i > 0 {
			p.parts = append(p.parts, prefixPart{lit: rest[:i]})
		}
		p.parts = append(p.parts, prefixPart{v: rest[i+1 : j]})
		rest = rest[j+1:]
	}
	return p, nil
}

// CheckStreamPrefix reports whether tmpl is a valid stream prefix template
// using only the placeholders in vars (e.g. "topic", "camera"): placeholders
// are "{name}", the rest must contain no MQTT wildcard ('+', '#'), no NUL,
// no empty level, and must not start or end with '/'.
func CheckStreamPrefix(tmpl string, vars ...string) error {
	if tmpl == "" {
		return fmt.Errorf("stream prefix is empty")
	}
	rest := tmpl
	var literal strings.Builder
	for rest != "" {
		i := strings.IndexAny(rest, "{}")
		if i < 0 {
			literal.WriteString(rest)
			break
		}
		if rest[i] == '}' {
			return fmt.Errorf("stream prefix %q: unmatched '}'", tmpl)
		}
		literal.WriteString(rest[:i])
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return fmt.Errorf("stream prefix %q: unmatched '{'", tmpl)
		}
		name := rest[i+1 : i+j]
		ok := false
		for _, v := range vars {
			ok = ok || v == name
		}
		if !ok {
			return fmt.Errorf("stream prefix %q: unknown placeholder {%s} (known: {%s})", tmpl, name, strings.Join(vars, "}, {"))
		}
		literal.WriteString("x")
		rest = rest[i+j+1:]
	}
	l := literal.String()
	switch {
	case strings.ContainsAny(l, "+#\x00"):
		return fmt.Errorf("stream prefix %q must not contain '+', '#' or NUL", tmpl)
	case strings.HasPrefix(l, "/") || strings.HasSuffix(l, "/") || strings.Contains(l, "//"):
		return fmt.Errorf("stream prefix %q must not start or end with '/' or have an empty level", tmpl)
	}
	return nil
}

// expand returns the prefix for topic (and camera, already sanitised).
func (p prefixTemplate) expand(topic, camera string) string {
	topic = sanitizeTopic(topic)
	if p.tmpl == DefaultStreamPrefix {
		return topic
	}
	var b strings.Builder
	for _, part := range p.parts {
		switch part.v {
		case "":
			b.WriteString(part.lit)
		case "topic":
			b.WriteString(topic)
		case "camera":
			b.WriteString(camera)
		}
	}
	return b.String()
}

// sanitizeTopic replaces MQTT wildcards and NUL in a topic (a broker never
// delivers them, but a stream id must never contain one) with '_'.
func sanitizeTopic(t string) string {
	if !strings.ContainsAny(t, "+#\x00") {
		return t
	}
	return strings.Map(func(r rune) rune {
		if r == '+' || r == '#' || r == 0 {
			return '_'
		}
		return r
	}, t)
}

// sanitizeToken makes s one stream-id level: '/', '+', '#', control
// characters and spaces become '_'.
func sanitizeToken(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '+' || r == '#' || r <= ' ' || r == 0x7f || r == utf8.RuneError {
			return '_'
		}
		return r
	}, s)
}

// ValidStream reports whether s can be a stream id: not empty, no MQTT
// wildcard, no NUL.
func ValidStream(s string) bool {
	return s != "" && !strings.ContainsAny(s, "+#\x00")
}
