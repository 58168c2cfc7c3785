// Renders a Helm chart the way `helm template` does, for the chart tests: Go's text/template with
// the sprig functions and Helm's own (include, tpl, required, toYaml, fromYaml, .Files.Get), the
// chart's values.yaml under the values files given, and .Chart, .Release and .Files. Helm itself
// is not installable here; this is the part of it a chart's templates see.
//
//	render CHART_DIR [VALUES_FILE...] > manifests.yaml
package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"gopkg.in/yaml.v3"
)

type files struct{ dir string }

// Get returns the content of a file of the chart, as Helm's .Files.Get does.
func (f files) Get(name string) string {
	data, err := os.ReadFile(filepath.Join(f.dir, name))
	if err != nil {
		return ""
	}
	return string(data)
}

func readYaml(path string) map[string]interface{} {
	data, err := os.ReadFile(path)
	if err != nil {
		fail("%v", err)
	}
	out := map[string]interface{}{}
	if err := yaml.Unmarshal(data, &out); err != nil {
		fail("%s: %v", path, err)
	}
	return out
}

// merge puts over on top of base: maps merge key by key, anything else replaces.
func merge(base, over map[string]interface{}) map[string]interface{} {
	out := map[string]interface{}{}
	for key, value := range base {
		out[key] = value
	}
	for key, value := range over {
		baseMap, baseIsMap := out[key].(map[string]interface{})
		overMap, overIsMap := value.(map[string]interface{})
		if baseIsMap && overIsMap {
			out[key] = merge(baseMap, overMap)
		} else {
			out[key] = value
		}
	}
	return out
}

func toYaml(value interface{}) string {
	var buffer bytes.Buffer
	encoder := yaml.NewEncoder(&buffer)
	encoder.SetIndent(2)
	if err := encoder.Encode(value); err != nil {
		return ""
	}
	return strings.TrimSuffix(buffer.String(), "\n")
}

func fromYaml(text string) map[string]interface{} {
	out := map[string]interface{}{}
	if err := yaml.Unmarshal([]byte(text), &out); err != nil {
		out["Error"] = err.Error()
	}
	return out
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: render CHART_DIR [VALUES_FILE...]")
	}
	dir := os.Args[1]
	chart := readYaml(filepath.Join(dir, "Chart.yaml"))
	values := readYaml(filepath.Join(dir, "values.yaml"))
	for _, path := range os.Args[2:] {
		values = merge(values, readYaml(path))
	}
	data := map[string]interface{}{
		"Values": values,
		"Chart": map[string]interface{}{
			"Name": chart["name"], "Version": chart["version"], "AppVersion": chart["appVersion"],
		},
		"Release": map[string]interface{}{
			"Name": "wsgate", "Namespace": "default", "Service": "Helm", "IsInstall": true, "Revision": 1,
		},
		"Files": files{dir: dir},
	}
	root := template.New("chart").Option("missingkey=zero")
	funcs := sprig.TxtFuncMap()
	funcs["toYaml"] = toYaml
	funcs["fromYaml"] = fromYaml
	funcs["required"] = func(message string, value interface{}) (interface{}, error) {
		if value == nil || value == "" {
			return nil, fmt.Errorf("%s", message)
		}
		return value, nil
	}
	funcs["include"] = func(name string, data interface{}) (string, error) {
		var buffer bytes.Buffer
		err := root.ExecuteTemplate(&buffer, name, data)
		return buffer.String(), err
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		inline, err := root.Clone()
		if err != nil {
			return "", err
		}
		parsed, err := inline.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buffer bytes.Buffer
		err = parsed.Execute(&buffer, data)
		return buffer.String(), err
	}
	root.Funcs(funcs)
	paths, _ := filepath.Glob(filepath.Join(dir, "templates", "*"))
	sort.Strings(paths)
	var rendered []string
	for _, path := range paths {
		text, err := os.ReadFile(path)
		if err != nil {
			fail("%v", err)
		}
		if _, err := root.New(filepath.Base(path)).Parse(string(text)); err != nil {
			fail("%v", err)
		}
		rendered = append(rendered, path)
	}
	var out strings.Builder
	for _, path := range rendered {
		name := filepath.Base(path)
		if strings.HasPrefix(name, "_") || !strings.HasSuffix(name, ".yaml") {
			continue
		}
		var buffer bytes.Buffer
		if err := root.ExecuteTemplate(&buffer, name, data); err != nil {
			fail("%s", err.Error())
		}
		body := strings.ReplaceAll(buffer.String(), "<no value>", "")
		if strings.TrimSpace(body) == "" {
			continue
		}
		fmt.Fprintf(&out, "---\n# Source: %s/templates/%s\n%s\n", chart["name"], name, strings.TrimSpace(body))
	}
	fmt.Print(out.String())
}
