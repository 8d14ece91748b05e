//! Where `oms up --replicas N` puts things: each service's front door on
//! the ports `oms up` always used (`orders` at the base port, the rest after
//! it), and its replicas on the blocks of eight ports after those.

use std::net::{Ipv4Addr, SocketAddr};

use homeostat_api::oms::OMS_SERVICES;

/// The most replicas of each service `oms up` runs.
pub const MAX_REPLICAS: u16 = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    base_port: u16,
    replicas: u16,
}

/// One replica of one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub service: &'static str,
    /// 0-based, within its service.
    pub index: u16,
    pub address: SocketAddr,
}

impl Replica {
    /// `payment-primary#1`: how logs and the supervisor name it.
    pub fn label(&self) -> String {
        format!("{}#{}", self.service, self.index)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("--replicas takes 1 to {MAX_REPLICAS}, got {0}")]
    Replicas(u16),
    #[error("--base-port {base_port} leaves no room for {ports} ports")]
    Ports { base_port: u16, ports: u32 },
}

impl Layout {
    pub fn new(base_port: u16, replicas: u16) -> Result<Self, LayoutError> {
        if !(1..=MAX_REPLICAS).contains(&replicas) {
            return Err(LayoutError::Replicas(replicas));
        }
        let layout = Self {
            base_port,
            replicas,
        };
        let ports = layout.ports();
        if u32::from(base_port) + ports - 1 > u32::from(u16::MAX) {
            return Err(LayoutError::Ports { base_port, ports });
        }
        Ok(layout)
    }

    /// Ports used from the base port on: the front doors, then each block of replicas.
    fn ports(&self) -> u32 {
        (u32::from(self.replicas) + 1) * OMS_SERVICES.len() as u32
    }

    /// Where callers outside the OMS reach `service`, whichever replica answers.
    pub fn front(&self, service: &str) -> Option<SocketAddr> {
        let index = OMS_SERVICES.iter().position(|s| *s == service)?;
        Some(loopback(self.base_port + index as u16))
    }

    /// Every replica of every service, replica 0 of each service first.
    pub fn replicas(&self) -> Vec<Replica> {
        let services = OMS_SERVICES.len() as u16;
        (0..self.replicas)
            .flat_map(|index| {
                OMS_SERVICES
                    .iter()
                    .zip(0u16..)
                    .map(move |(service, position)| Replica {
                        service,
                        index,
                        address: loopback(self.base_port + services * (index + 1) + position),
                    })
            })
            .collect()
    }

    /// The replicas of `service`.
    pub fn replicas_of(&self, service: &str) -> Vec<Replica> {
        self.replicas()
            .into_iter()
            .filter(|r| r.service == service)
            .collect()
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_doors_keep_the_single_process_ports_and_replicas_follow() {
        let layout = Layout::new(8080, 2).expect("layout");
        assert_eq!(layout.front("orders"), Some(loopback(8080)));
        assert_eq!(layout.front("returns"), Some(loopback(8087)));
        assert_eq!(layout.front("warehouse"), None);
        let inventory: Vec<_> = layout
            .replicas_of("inventory")
            .iter()
            .map(|r| (r.label(), r.address.port()))
            .collect();
        assert_eq!(
            inventory,
            [
                ("inventory#0".to_owned(), 8089),
                ("inventory#1".to_owned(), 8097)
            ]
        );
        assert_eq!(layout.replicas().len(), 16);
        let mut ports: Vec<_> = layout.replicas().iter().map(|r| r.address.port()).collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports, (8088..8104).collect::<Vec<_>>());
    }

    #[test]
    fn refuses_replica_counts_and_ports_it_cannot_lay_out() {
        assert_eq!(Layout::new(8080, 0), Err(LayoutError::Replicas(0)));
        assert_eq!(Layout::new(8080, 9), Err(LayoutError::Replicas(9)));
        assert_eq!(
            Layout::new(65_500, 4),
            Err(LayoutError::Ports {
                base_port: 65_500,
                ports: 40
            })
        );
        assert!(Layout::new(65_496, 4).is_ok());
    }
}
