//! Integration suites against real servers: kube-apiserver + etcd from
//! `cargo xtask test-assets`, Debian's Prometheus and containerd. Each test starts the
//! servers it needs and stops them when it ends. The one-node cluster's
//! checks are in the demo's cluster test (demo/tests/cluster/), which
//! shares one bring-up with the demo played on it.

mod alert_rules;
mod chart;
mod common;
mod control_plane;
mod crds;
mod dashboards;
mod deployments;
mod detector;
mod images;
mod metrics_source;
mod prometheus;
mod rbac;
mod report_writer;
mod server_side_apply;
mod source_access;
mod validation;
