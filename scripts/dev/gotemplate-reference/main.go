// Renders template cases with Go's own text/template the way Matchbox does
// (Option("missingkey=error"), data decoded by encoding/json so every number is a float64)
// and prints each case's output or error. Input and output: JSON arrays on stdin/stdout.
// Dev tool only: tests read the fixture it produced and never need Go.
package main

import (
	"bytes"
	"encoding/json"
	"os"
	"text/template"
)

type inputCase struct {
	Name string `json:"name"`
	// Template name as given to template.New; Matchbox uses "".
	TemplateName string          `json:"template_name"`
	Template     string          `json:"template"`
	Data         json.RawMessage `json:"data"`
	// Matchbox passes request.query as a map[string]string, not map[string]interface{}.
	QueryStrings bool `json:"query_strings,omitempty"`
}

type result struct {
	inputCase
	Output *string `json:"output,omitempty"`
	Error  *string `json:"error,omitempty"`
}

func decode(c inputCase) (any, error) {
	var data any
	if err := json.Unmarshal(c.Data, &data); err != nil {
		return nil, err
	}
	if !c.QueryStrings {
		return data, nil
	}
	request := data.(map[string]any)["request"].(map[string]any)
	query := map[string]string{}
	for k, v := range request["query"].(map[string]any) {
		query[k] = v.(string)
	}
	request["query"] = query
	return data, nil
}

func render(c inputCase) (string, error) {
	data, err := decode(c)
	if err != nil {
		return "", err
	}
	tmpl, err := template.New(c.TemplateName).Option("missingkey=error").Parse(c.Template)
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	if err := tmpl.Execute(&out, data); err != nil {
		return "", err
	}
	return out.String(), nil
}

func main() {
	var cases []inputCase
	if err := json.NewDecoder(os.Stdin).Decode(&cases); err != nil {
		panic(err)
	}
	results := make([]result, 0, len(cases))
	for _, c := range cases {
		r := result{inputCase: c}
		out, err := render(c)
		if err != nil {
			msg := err.Error()
			r.Error = &msg
		} else {
			r.Output = &out
		}
		results = append(results, r)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", " ")
	if err := enc.Encode(results); err != nil {
		panic(err)
	}
}
