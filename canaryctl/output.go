package canaryctl

import (
	"encoding/json"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"

	"github.com/canary-io/canary/contract"
)

// Status is what -o json and -o yaml print for one Deployment: its name
// and its canary.io status annotations, under the contract's names.
//
// Example (JSON):
//
//	{"namespace":"shop","name":"web","status":{"canary.io/phase":"Progressing","canary.io/weight":"20",...}}
type Status struct {
	Namespace string            `json:"namespace"`
	Name      string            `json:"name"`
	Status    map[string]string `json:"status"`
}

// StatusList is what list -o json and -o yaml print.
type StatusList struct {
	Items []Status `json:"items"`
}

// StatusOf is d's Status: every status annotation it carries.
func StatusOf(d *appsv1.Deployment) Status {
	s := Status{Namespace: d.Namespace, Name: d.Name, Status: map[string]string{}}
	for _, k := range contract.StatusKeys {
		if v, ok := d.Annotations[k]; ok {
			s.Status[k] = v
		}
	}
	return s
}

// print writes v as JSON (indented) or YAML.
func (p *Plugin) print(v any, output string) error {
	var data []byte
	var err error
	if output == "yaml" {
		data, err = yaml.Marshal(v)
	} else {
		data, err = json.MarshalIndent(v, "", "  ")
		data = append(data, '\n')
	}
	if err != nil {
		return err
	}
	_, err = p.Out.Write(data)
	return err
}
