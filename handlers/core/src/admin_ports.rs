//! The ports an open-ingress fix closes to the internet, and the port-range arithmetic every
//! cloud's firewall fix does with them (so a rule is narrowed the same way on each cloud).

/// One inclusive port range.
pub type PortRange = (u16, u16);

/// The ports an attacker scans for first: remote shells and desktops.
pub const ADMIN_PORTS: [(u16, &str); 4] = [
    (22, "SSH"),
    (3389, "RDP"),
    (5985, "WinRM"),
    (5986, "WinRM over HTTPS"),
];

/// The ranges with every admin port taken out.
pub fn without_admin_ports(ranges: &[PortRange]) -> Vec<PortRange> {
    let mut left: Vec<PortRange> = ranges.to_vec();
    for (port, _) in ADMIN_PORTS {
        left = left
            .into_iter()
            .flat_map(|(from, to)| {
                if port < from || port > to {
                    vec![(from, to)]
                } else {
                    let mut parts = Vec::new();
                    if from < port {
                        parts.push((from, port - 1));
                    }
                    if port < to {
                        parts.push((port + 1, to));
                    }
                    parts
                }
            })
            .collect();
    }
    left
}

/// `N` or `N-M`, as firewall rules write a range.
pub fn format_range((from, to): PortRange) -> String {
    if from == to {
        from.to_string()
    } else {
        format!("{from}-{to}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_ports_keeps_everything_but_the_admin_ports() {
        assert_eq!(
            without_admin_ports(&[(0, 65535)]),
            [(0, 21), (23, 3388), (3390, 5984), (5987, 65535)]
        );
    }

    #[test]
    fn a_range_that_is_one_admin_port_leaves_nothing_and_others_stay_whole() {
        assert_eq!(without_admin_ports(&[(22, 22), (443, 443)]), [(443, 443)]);
        assert_eq!(format_range((443, 443)), "443");
        assert_eq!(format_range((3000, 3388)), "3000-3388");
    }
}
