//! Which stages share a thread, where each thread runs, and how it waits; and the `auto` plan that
//! chooses all three from the cores available.

use core::fmt;

use super::WaitStrategy;

/// How the three stages (source → stage → sink) map onto threads. Fused stages run on one thread
/// and the hand-off between them is a direct call instead of a ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topology {
    /// `source | stage | sink`: three threads, two rings.
    Threads3,
    /// `source + stage | sink`: two threads, one ring (between stage and sink).
    FuseFirst2,
    /// `source | stage + sink`: two threads, one ring (between source and stage).
    FuseLast2,
    /// `source + stage + sink`: one thread, no ring.
    Fused1,
}

impl Topology {
    /// Every topology, for tests and command-line choices.
    pub const ALL: [Topology; 4] = [
        Topology::Threads3,
        Topology::FuseFirst2,
        Topology::FuseLast2,
        Topology::Fused1,
    ];

    /// Number of threads this topology starts.
    pub fn threads(self) -> usize {
        self.groups().len()
    }

    /// The stage indices (0 source, 1 stage, 2 sink) run by each thread, in pipeline order.
    pub fn groups(self) -> &'static [&'static [usize]] {
        match self {
            Topology::Threads3 => &[&[0], &[1], &[2]],
            Topology::FuseFirst2 => &[&[0, 1], &[2]],
            Topology::FuseLast2 => &[&[0], &[1, 2]],
            Topology::Fused1 => &[&[0, 1, 2]],
        }
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Topology::Threads3 => "threads-3 (source | stage | sink)",
            Topology::FuseFirst2 => "fuse-first-2 (source+stage | sink)",
            Topology::FuseLast2 => "fuse-last-2 (source | stage+sink)",
            Topology::Fused1 => "fused-1 (source+stage+sink)",
        })
    }
}

/// Where a thread runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Placement {
    /// Wherever the OS schedules it.
    Unpinned,
    /// Pinned to this core id (as `core_affinity` numbers them; see [`available_cores`]).
    Core(usize),
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Placement::Unpinned => f.write_str("unpinned"),
            Placement::Core(id) => write!(f, "core {id}"),
        }
    }
}

/// One thread's placement and wait strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ThreadPlan {
    /// Where the thread runs.
    pub placement: Placement,
    /// How it waits when idle or back-pressured.
    pub wait: WaitStrategy,
}

/// A complete placement decision, with the reasons for it, printable for logs.
///
/// Invariant (checked at launch): `threads.len() == topology.threads()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyPlan {
    /// Which stages share threads.
    pub topology: Topology,
    /// One entry per thread, in pipeline order.
    pub threads: Vec<ThreadPlan>,
    /// Why this plan, one sentence each.
    pub reasons: Vec<String>,
}

/// The ids of the cores this process may run on.
///
/// `core_affinity` answers with the *calling thread's* current mask, so call this once, before any
/// thread is pinned, and pass the list around: a pinned thread asking again sees only its own core.
/// Returns an empty list when the platform cannot tell.
pub fn available_cores() -> Vec<usize> {
    core_affinity::get_core_ids()
        .map(|ids| ids.into_iter().map(|c| c.id).collect())
        .unwrap_or_default()
}

impl TopologyPlan {
    /// A plan given by the caller: every thread unpinned, waiting with `wait`.
    pub fn unpinned(topology: Topology, wait: WaitStrategy) -> Self {
        Self {
            topology,
            threads: vec![
                ThreadPlan {
                    placement: Placement::Unpinned,
                    wait,
                };
                topology.threads()
            ],
            reasons: vec![format!(
                "chosen by the caller: {topology}, unpinned, {wait}"
            )],
        }
    }

    /// A plan given by the caller, thread by thread.
    pub fn manual(topology: Topology, threads: Vec<ThreadPlan>) -> Self {
        Self {
            topology,
            threads,
            reasons: vec![format!("chosen by the caller: {topology}")],
        }
    }

    /// How the thread running the middle stage (risk) waits.
    pub fn stage_wait(&self) -> WaitStrategy {
        self.topology
            .groups()
            .iter()
            .position(|g| g.contains(&super::STAGE))
            .and_then(|t| self.threads.get(t))
            .map_or(WaitStrategy::BackoffPark, |t| t.wait)
    }

    /// Chooses fusing, pinning and waiting from the cores this process may use (as returned by
    /// [`available_cores`], read once before any pinning).
    ///
    /// - 4 or more cores: one thread per stage on cores 2nd–4th of the list, busy-spinning; the
    ///   first core is left to the OS, interrupts and the telemetry thread.
    /// - 3 cores: one thread per stage, pinned, spin-then-yield (no core left for anything else).
    /// - 2 cores: `source | stage+sink`, pinned, spin-then-yield.
    /// - 1 core or unknown: everything fused on one unpinned thread, back-off/park.
    pub fn auto(cores: &[usize]) -> Self {
        let pinned = |ids: &[usize], wait| -> Vec<ThreadPlan> {
            ids.iter()
                .map(|&id| ThreadPlan {
                    placement: Placement::Core(id),
                    wait,
                })
                .collect()
        };
        let n = cores.len();
        match n {
            4.. => Self {
                topology: Topology::Threads3,
                threads: pinned(&cores[1..4], WaitStrategy::BusySpin),
                reasons: vec![
                    format!("{n} cores available: one thread per stage, each on its own core"),
                    format!(
                        "core {} left to the OS, interrupts and the telemetry thread",
                        cores[0]
                    ),
                    "busy-spin: every stage owns its core, so spinning steals from nobody and \
                     gives the lowest hand-off latency"
                        .to_owned(),
                ],
            },
            3 => Self {
                topology: Topology::Threads3,
                threads: pinned(cores, WaitStrategy::SpinYield),
                reasons: vec![
                    "3 cores available: one thread per stage, each pinned to its own core"
                        .to_owned(),
                    "spin-then-yield: no core is left for the OS or telemetry, so an idle stage \
                     yields after spinning"
                        .to_owned(),
                ],
            },
            2 => Self {
                topology: Topology::FuseLast2,
                threads: pinned(cores, WaitStrategy::SpinYield),
                reasons: vec![
                    "2 cores for 3 stages: stage and sink fused on one thread (their hand-off \
                     becomes a direct call)"
                        .to_owned(),
                    "the source keeps its own core so reading the input never waits on the \
                     stage's computation"
                        .to_owned(),
                    "spin-then-yield: both cores carry a stage, so an idle stage yields to the \
                     OS and telemetry"
                        .to_owned(),
                ],
            },
            1 => Self {
                topology: Topology::Fused1,
                threads: vec![ThreadPlan {
                    placement: Placement::Unpinned,
                    wait: WaitStrategy::BackoffPark,
                }],
                reasons: vec![
                    "1 core: all stages fused on one thread, no rings".to_owned(),
                    "unpinned: there is only one core to run on anyway".to_owned(),
                    "back-off/park: spinning would starve every other thread on the core"
                        .to_owned(),
                ],
            },
            0 => Self {
                topology: Topology::Fused1,
                threads: vec![ThreadPlan {
                    placement: Placement::Unpinned,
                    wait: WaitStrategy::BackoffPark,
                }],
                reasons: vec![
                    "core list unavailable on this platform: assuming one core".to_owned(),
                    "all stages fused on one unpinned thread, back-off/park".to_owned(),
                ],
            },
        }
    }
}

/// How the risk stage's shards run: how many, and on which threads. With no threads the shards
/// run inline on the risk stage's thread, one after another in shard order ("fused"); with one
/// thread per shard, the risk stage fans inputs out to them and merges their outputs.
///
/// Invariant: `threads` is empty or holds one entry per shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPlan {
    /// Risk shards (1: unsharded).
    pub count: usize,
    /// One per shard thread, in shard order; empty: the shards run inline.
    pub threads: Vec<ThreadPlan>,
    /// Why this plan, one sentence each.
    pub reasons: Vec<String>,
}

impl Default for ShardPlan {
    fn default() -> Self {
        Self::single()
    }
}

impl ShardPlan {
    /// One shard, on the risk stage's thread (the unsharded engine).
    pub fn single() -> Self {
        Self {
            count: 1,
            threads: Vec::new(),
            reasons: Vec::new(),
        }
    }

    /// `count` shards run inline on the risk stage's thread.
    pub fn inline(count: usize) -> Self {
        Self {
            count,
            threads: Vec::new(),
            reasons: vec![format!(
                "chosen by the caller: {count} shard(s) inline on the risk thread"
            )],
        }
    }

    /// `count` shard threads waiting with `wait`, pinned to `cores` (one per shard) or unpinned
    /// when `cores` is empty.
    pub fn threads(count: usize, wait: WaitStrategy, cores: &[usize]) -> Self {
        let threads = (0..count)
            .map(|k| ThreadPlan {
                placement: cores
                    .get(k)
                    .map_or(Placement::Unpinned, |&c| Placement::Core(c)),
                wait,
            })
            .collect();
        Self {
            count,
            threads,
            reasons: vec![format!(
                "chosen by the caller: {count} shard thread(s), {}, {wait}",
                if cores.is_empty() {
                    "unpinned"
                } else {
                    "pinned"
                }
            )],
        }
    }

    /// Chooses for `count` shards beside `pipeline` on `cores` (as [`TopologyPlan::auto`] reads
    /// them): one pinned thread per shard on cores no pipeline thread is pinned to (the first of
    /// four or more is left to the OS, as the pipeline leaves it), busy-spinning when the
    /// pipeline does; inline on the risk thread when there are not enough such cores.
    pub fn auto(count: usize, cores: &[usize], pipeline: &TopologyPlan) -> Self {
        if count <= 1 {
            return Self::single();
        }
        let taken: Vec<usize> = pipeline
            .threads
            .iter()
            .filter_map(|t| match t.placement {
                Placement::Core(c) => Some(c),
                Placement::Unpinned => None,
            })
            .collect();
        let skip = usize::from(cores.len() >= 4);
        let free: Vec<usize> = cores
            .iter()
            .skip(skip)
            .copied()
            .filter(|c| !taken.contains(c))
            .collect();
        if free.len() >= count {
            let wait = pipeline
                .threads
                .first()
                .map_or(WaitStrategy::SpinYield, |t| t.wait);
            let mut plan = Self::threads(count, wait, &free[..count]);
            plan.reasons = vec![format!(
                "{count} shards, {} free core(s): one pinned thread per shard, {wait} like the \
                 pipeline",
                free.len()
            )];
            plan
        } else {
            Self {
                count,
                threads: Vec::new(),
                reasons: vec![format!(
                    "{count} shards need {count} cores of their own, {} free: the shards run \
                     inline on the risk thread, one after another (same decisions, no parallel \
                     speed-up)",
                    free.len()
                )],
            }
        }
    }

    /// Whether the shards run on threads of their own.
    pub fn threaded(&self) -> bool {
        !self.threads.is_empty()
    }
}

impl fmt::Display for ShardPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.threaded() {
            writeln!(f, "risk shards: {}, one thread each", self.count)?;
            for (k, t) in self.threads.iter().enumerate() {
                writeln!(f, "  shard {k}: {}, {}", t.placement, t.wait)?;
            }
        } else {
            writeln!(f, "risk shards: {}, inline on the risk thread", self.count)?;
        }
        for r in &self.reasons {
            writeln!(f, "  because {r}")?;
        }
        Ok(())
    }
}

impl fmt::Display for TopologyPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} on {} thread(s)",
            self.topology,
            self.topology.threads()
        )?;
        for (i, t) in self.threads.iter().enumerate() {
            writeln!(f, "  thread {i}: {}, {}", t.placement, t.wait)?;
        }
        for r in &self.reasons {
            writeln!(f, "  because {r}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod shard_plan_tests {
    use super::*;

    #[test]
    fn auto_gives_shards_free_cores_or_runs_them_inline() {
        // 8 cores: the pipeline on 1–3, shards on 4 and 5; core 0 stays with the OS.
        let cores: Vec<usize> = (0..8).collect();
        let pipeline = TopologyPlan::auto(&cores);
        let plan = ShardPlan::auto(2, &cores, &pipeline);
        assert!(plan.threaded());
        assert_eq!(
            plan.threads.iter().map(|t| t.placement).collect::<Vec<_>>(),
            vec![Placement::Core(4), Placement::Core(5)]
        );
        assert!(
            plan.threads
                .iter()
                .all(|t| t.wait == WaitStrategy::BusySpin)
        );
        // 5 shards do not fit in the 4 cores left: inline, and it says why.
        let plan = ShardPlan::auto(5, &cores, &pipeline);
        assert_eq!((plan.count, plan.threaded()), (5, false));
        assert!(plan.reasons[0].contains("inline"), "{plan}");
        // 2 cores, both taken by the pipeline.
        let cores = [0, 1];
        let pipeline = TopologyPlan::auto(&cores);
        let plan = ShardPlan::auto(2, &cores, &pipeline);
        assert!(!plan.threaded());
        assert!(
            plan.to_string().contains("inline on the risk thread"),
            "{plan}"
        );
        assert_eq!(ShardPlan::auto(1, &cores, &pipeline), ShardPlan::single());
    }
}
