// Package plugins replaces Prometheus's own plugins/plugins.go when the
// cluster's Prometheus is built (xtask/src/test_assets.rs): the service
// discoveries it registers are the ones the in-cluster Prometheus uses.
// Upstream's list adds a dozen cloud providers' SDKs (AWS, Azure, GCE, …),
// which were about half of Prometheus's compile time. Prometheus's
// plugins/minimum.go (file and HTTP discovery) stays.
package plugins

import (
	// Register the kubernetes plugin.
	_ "github.com/prometheus/prometheus/discovery/kubernetes"
)
