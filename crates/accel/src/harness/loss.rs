//! Random packet loss on an interface of a test namespace: netem's `loss N%` for kernels built
//! without netem (this machine's has no CONFIG_NET_SCH_NETEM, and `tc qdisc add … netem` fails
//! with "Specified qdisc kind is unknown"). A tc program (bpf/test_loss.bpf.c) on the
//! interface's ingress and egress drops each packet with the given probability and counts what
//! it dropped, so a test can show the loss took place.

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, PerCpuArray},
    programs::{SchedClassifier, TcAttachType},
};

use super::NetNsGuard;
use crate::{AccelError, objects};

const OBJECT: &str = "test_loss";

/// Loss attached to one interface; dropping it detaches the program.
pub struct Loss {
    ebpf: Ebpf,
}

impl std::fmt::Debug for Loss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loss").finish_non_exhaustive()
    }
}

impl Loss {
    /// Drops `per_million` of every million packets in each direction on `iface` of `ns`.
    pub fn attach(ns: &NetNsGuard, iface: &str, per_million: u32) -> Result<Loss, AccelError> {
        ns.run(|| {
            let mut ebpf = EbpfLoader::new()
                .load(objects::TEST_LOSS)
                .map_err(|e| AccelError::bpf(format!("loading {OBJECT}"), e))?;
            {
                let map = objects::map_mut(&mut ebpf, OBJECT, "loss_config")?;
                let mut config = Array::<_, u32>::try_from(map)
                    .map_err(|e| AccelError::bpf("loss_config", e))?;
                config
                    .set(0, per_million.min(1_000_000), 0)
                    .map_err(|e| AccelError::bpf("setting the loss rate", e))?;
            }
            let prog: &mut SchedClassifier = objects::program_mut(&mut ebpf, OBJECT, OBJECT)?;
            prog.load()
                .map_err(|e| AccelError::bpf(format!("loading {OBJECT}"), e))?;
            for dir in [TcAttachType::Ingress, TcAttachType::Egress] {
                prog.attach(iface, dir)
                    .map_err(|e| AccelError::bpf(format!("attaching {OBJECT} to {iface}"), e))?;
            }
            Ok(Loss { ebpf })
        })
    }

    /// Packets dropped so far (both directions).
    pub fn dropped(&mut self) -> Result<u64, AccelError> {
        let map = objects::map_mut(&mut self.ebpf, OBJECT, "loss_stats")?;
        let stats =
            PerCpuArray::<_, u64>::try_from(map).map_err(|e| AccelError::bpf("loss_stats", e))?;
        let v = stats
            .get(&1, 0)
            .map_err(|e| AccelError::bpf("reading loss_stats", e))?;
        Ok(v.iter().sum())
    }
}
