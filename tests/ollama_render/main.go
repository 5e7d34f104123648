// Renders chat prompts from a Modelfile the way Ollama does, for tests/test_ollama_modelfile.py.
//
// Usage: go run . Modelfile conversations.json   (prints a JSON object: template, system, renders)
//
// What it mirrors (Ollama's parser/parser.go, server/routes.go and template/template.go, read for this):
//   - Modelfile values: a command word, then a value that ends at the first line end where the value so far,
//     trimmed, is complete: `"""…"""` (verbatim, newlines kept), `"…"`, or a bare word; `#` lines are comments;
//     unprintable characters other than space, tab and line ends are dropped.
//   - Chat: the SYSTEM text is put first as a system message when the first message is not a system message.
//   - Consecutive messages of one role are joined with "\n\n"; .System is every system message joined the same
//     way; .Messages keeps the system messages.
//   - The template is Go's text/template with missingkey=zero and a `json` function.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/template"
)

type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

func complete(s string) (string, bool) {
	if strings.HasPrefix(s, `"""`) {
		if len(s) >= 6 && strings.HasSuffix(s, `"""`) {
			return s[3 : len(s)-3], true
		}
		return "", false
	}
	if strings.HasPrefix(s, `"`) {
		if len(s) >= 2 && strings.HasSuffix(s, `"`) {
			return s[1 : len(s)-1], true
		}
		return "", false
	}
	return s, true
}

// parse returns the Modelfile's commands in order as (name, value) pairs; PARAMETER values are "name value".
func parse(text string) ([][2]string, error) {
	var cmds [][2]string
	runes := []rune(text)
	i := 0
	for i < len(runes) {
		r := runes[i]
		switch {
		case r == ' ' || r == '\t' || r == '\n' || r == '\r':
			i++
			continue
		case r == '#':
			for i < len(runes) && runes[i] != '\n' && runes[i] != '\r' {
				i++
			}
			continue
		}
		j := i
		for j < len(runes) && (runes[j] >= 'a' && runes[j] <= 'z' || runes[j] >= 'A' && runes[j] <= 'Z') {
			j++
		}
		name := strings.ToLower(string(runes[i:j]))
		if j == i || j >= len(runes) || (runes[j] != ' ' && runes[j] != '\t') {
			return nil, fmt.Errorf("bad command at rune %d", i)
		}
		i = j + 1
		if name == "parameter" {
			k := i
			for k < len(runes) && runes[k] != ' ' && runes[k] != '\t' {
				k++
			}
			name = "parameter " + string(runes[i:k])
			i = k + 1
		}
		var b strings.Builder
		done := false
		for ; i < len(runes); i++ {
			r := runes[i]
			if r == '\n' || r == '\r' {
				if v, ok := complete(strings.TrimSpace(b.String())); ok {
					cmds = append(cmds, [2]string{name, v})
					done = true
					break
				}
				b.WriteRune(r)
			} else if r == ' ' || r == '\t' || strconv.IsPrint(r) {
				b.WriteRune(r)
			}
		}
		if !done {
			v, ok := complete(strings.TrimSpace(b.String()))
			if !ok {
				return nil, fmt.Errorf("unterminated value for %s", name)
			}
			cmds = append(cmds, [2]string{name, v})
		}
	}
	return cmds, nil
}

func main() {
	mf, err := os.ReadFile(os.Args[1])
	if err != nil {
		panic(err)
	}
	cmds, err := parse(string(mf))
	if err != nil {
		panic(err)
	}
	var tmpl, system string
	var haveTemplate, haveSystem bool
	var stops []string
	for _, c := range cmds {
		switch {
		case c[0] == "template":
			tmpl, haveTemplate = c[1], true
		case c[0] == "system":
			system, haveSystem = c[1], true
		case c[0] == "parameter stop":
			v, _ := complete(strings.TrimSpace(c[1]))
			stops = append(stops, v)
		}
	}
	var convs [][]Message
	raw, err := os.ReadFile(os.Args[2])
	if err != nil {
		panic(err)
	}
	if err := json.Unmarshal(raw, &convs); err != nil {
		panic(err)
	}
	funcs := template.FuncMap{"json": func(v any) string { b, _ := json.Marshal(v); return string(b) }}
	t, err := template.New("").Option("missingkey=zero").Funcs(funcs).Parse(tmpl)
	if err != nil {
		panic(err)
	}
	renders := []string{}
	for _, conv := range convs {
		msgs := conv
		if system != "" && (len(msgs) == 0 || msgs[0].Role != "system") {
			msgs = append([]Message{{Role: "system", Content: system}}, msgs...)
		}
		var sys []string
		var collated []*Message
		for k := range msgs {
			m := msgs[k]
			if m.Role == "system" {
				sys = append(sys, m.Content)
			}
			if n := len(collated); n > 0 && collated[n-1].Role == m.Role {
				collated[n-1].Content += "\n\n" + m.Content
			} else {
				collated = append(collated, &m)
			}
		}
		var out strings.Builder
		err := t.Execute(&out, map[string]any{
			"System": strings.Join(sys, "\n\n"), "Messages": collated, "Tools": nil, "Response": "",
		})
		if err != nil {
			panic(err)
		}
		renders = append(renders, out.String())
	}
	res, _ := json.Marshal(map[string]any{
		"has_template": haveTemplate, "template": tmpl, "has_system": haveSystem, "system": system,
		"stops": stops, "renders": renders,
	})
	fmt.Println(string(res))
}
