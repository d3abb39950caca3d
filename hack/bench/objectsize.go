package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
)

// ObjectSize is one cycle user as the API server stores it: custom
// resources are kept in etcd as the JSON the API server returns.
type ObjectSize struct {
	Bytes              int `json:"bytes"`
	ManagedFieldsBytes int `json:"managedFieldsBytes"`
	MetadataBytes      int `json:"metadataBytes"` // managedFields included
	SpecBytes          int `json:"specBytes"`
	StatusBytes        int `json:"statusBytes"`
}

// objectSize reads one ProvisionedUser raw from the API server (managedFields
// included, which the operator's cache strips) and measures its parts.
func (b *bench) objectSize(ctx context.Context, namespace, name string) (*ObjectSize, error) {
	url := fmt.Sprintf("%s/apis/%s/%s/namespaces/%s/provisionedusers/%s", strings.TrimSuffix(b.apiHost, "/"),
		scimv1.GroupVersion.Group, scimv1.GroupVersion.Version, namespace, name)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := b.apiHTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	var parts struct {
		Metadata map[string]json.RawMessage `json:"metadata"`
		Spec     json.RawMessage            `json:"spec"`
		Status   json.RawMessage            `json:"status"`
	}
	if err := json.Unmarshal(body, &parts); err != nil {
		return nil, err
	}
	meta, _ := json.Marshal(parts.Metadata)
	return &ObjectSize{Bytes: len(body), ManagedFieldsBytes: len(parts.Metadata["managedFields"]),
		MetadataBytes: len(meta), SpecBytes: len(parts.Spec), StatusBytes: len(parts.Status)}, nil
}
