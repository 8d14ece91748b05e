//! Integration suites against real servers: kube-apiserver + etcd from
//! `cargo xtask test-assets`, Debian's Prometheus and containerd. Each test starts the
//! servers it needs and stops them when it ends.

mod cluster;
mod common;
mod control_plane;
mod crds;
mod dashboards;
mod deployments;
mod detector;
mod images;
mod metrics_source;
mod overlays;
mod prometheus;
mod rbac;
mod report_writer;
mod server_side_apply;
mod validation;
