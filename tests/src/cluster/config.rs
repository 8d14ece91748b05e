//! The one-node cluster's addresses and the configuration files of its
//! parts, as text: pure, no I/O.

use std::path::Path;

use super::pki::Client;

/// The node's name.
pub const NODE: &str = "homeostat-node";
/// The bridge the pods hang off; its address is the node's and the API
/// server's, so pods and the host reach both and nothing else routes there.
pub const BRIDGE: &str = "hstat0";
pub const NODE_IP: &str = "10.244.0.1";
pub const POD_SUBNET: &str = "10.244.0.0/24";
pub const BRIDGE_ADDRESS: &str = "10.244.0.1/24";
pub const SERVICE_RANGE: &str = "10.96.0.0/16";
/// The `kubernetes` Service's address: the first of the range.
pub const KUBERNETES_SERVICE_IP: &str = "10.96.0.1";
/// The `kube-system/kube-dns` Service's address, pods' resolver.
pub const CLUSTER_DNS: &str = "10.96.0.10";
pub const APISERVER_PORT: u16 = 6443;
/// etcd on loopback only.
pub const ETCD_CLIENT: &str = "http://127.0.0.1:23790";
pub const ETCD_PEER: &str = "http://127.0.0.1:23800";
/// The sandbox image every pod starts with; `cargo xtask images` builds it.
pub const PAUSE_IMAGE: &str = "ghcr.io/homeostat-dev/pause:1.0";

pub fn apiserver_url() -> String {
    format!("https://{NODE_IP}:{APISERVER_PORT}")
}

/// A kubeconfig for `client`, with its certificate from `pki`.
pub fn kubeconfig(pki: &Path, client: Client) -> String {
    use crate::control_plane::{client_certificate, kubeconfig_yaml};
    kubeconfig_yaml(
        &apiserver_url(),
        &pki.join("ca.crt"),
        client.file(),
        client_certificate(pki, client.file()),
    )
}

/// containerd with Kubernetes' CRI plugin, its state under `dir`.
pub fn containerd(dir: &Path, cni_conf: &Path, cni_bin: &Path) -> String {
    format!(
        r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{socket}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # Without CAP_SYS_RESOURCE runc cannot lower a sandbox's oom_score_adj.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"
"#,
        root = dir.join("root").display(),
        state = dir.join("state").display(),
        socket = containerd_socket(dir).display(),
        cni_bin = cni_bin.display(),
        cni_conf = cni_conf.display(),
    )
}

pub fn containerd_socket(dir: &Path) -> std::path::PathBuf {
    dir.join("containerd.sock")
}

/// The pod network: the bridge plugin on [`BRIDGE`], addresses from
/// [`POD_SUBNET`], and no masquerading — pod traffic never leaves the machine.
pub fn cni(ipam_dir: &Path) -> String {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "homeostat",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_SUBNET, "gateway": NODE_IP}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": ipam_dir.display().to_string()
                }
            },
            {"type": "portmap", "capabilities": {"portMappings": true}},
            {"type": "loopback"}
        ]
    })
    .to_string()
}

/// The kubelet: cgroupfs (cgroups v1 here), webhook authentication and
/// authorization, no eviction thresholds (a developer's disk is not a node's).
pub fn kubelet(containerd_dir: &Path, pki: &Path) -> String {
    format!(
        "apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://{socket}
address: {NODE_IP}
healthzBindAddress: 127.0.0.1
healthzPort: 10248
failSwapOn: false
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: {ca}
authorization:
  mode: Webhook
clusterDNS: [\"{CLUSTER_DNS}\"]
clusterDomain: cluster.local
cgroupsPerQOS: false
enforceNodeAllocatable: []
evictionHard:
  memory.available: \"0%\"
  nodefs.available: \"0%\"
  imagefs.available: \"0%\"
imageGCHighThresholdPercent: 100
serializeImagePulls: false
",
        socket = containerd_socket(containerd_dir).display(),
        ca = pki.join("ca.crt").display(),
    )
}

/// kube-proxy in iptables mode. Service traffic is masqueraded to the
/// node's bridge address (the host has no br_netfilter, so a reply between
/// two pods on the bridge would otherwise skip the NAT); it stays on the
/// bridge. NodePorts answer on the bridge address only, conntrack limits are
/// left as the machine has them.
pub fn kube_proxy(kubeconfig: &Path) -> String {
    format!(
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: {kubeconfig}
hostnameOverride: {NODE}
mode: iptables
clusterCIDR: {POD_SUBNET}
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: [\"{NODE_IP}/32\"]
conntrack:
  maxPerCore: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
iptables:
  masqueradeAll: true
  localhostNodePorts: false
",
        kubeconfig = kubeconfig.display(),
    )
}
