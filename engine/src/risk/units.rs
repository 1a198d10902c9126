//! Margin units: the cross part of each account, and each isolated position on its own.
//!
//! A unit is what the index bands and what the state machine tracks. Unit `a` is always the cross
//! part of account index `a`; isolated positions get units numbered after the accounts, allocated
//! when the position opens and recycled when it closes. An isolated unit's loss never touches its
//! account's cross unit: they are evaluated, banded and liquidated apart.

use std::collections::HashMap;

/// The instrument field of a cross unit.
pub const CROSS: u32 = u32::MAX;

/// Where a unit stands in the margin procedure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum UnitState {
    /// No open position: nothing to watch, not banded.
    Flat = 0,
    /// Margin ratio below the call level (or back below the re-arm level after a call).
    Healthy = 1,
    /// A margin call was raised and has not re-armed.
    Called = 2,
    /// Being liquidated: orders are out; not banded until they finish.
    Liquidating = 3,
    /// Could not be evaluated (an instrument without a mark yet): re-evaluated on its first mark.
    Unpriced = 4,
}

impl UnitState {
    /// Lower-case name for reports.
    pub const fn name(self) -> &'static str {
        match self {
            UnitState::Flat => "flat",
            UnitState::Healthy => "healthy",
            UnitState::Called => "called",
            UnitState::Liquidating => "liquidating",
            UnitState::Unpriced => "unpriced",
        }
    }
}

/// One margin unit: 12 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unit {
    /// Index of the owning account.
    pub account: u32,
    /// The isolated position's instrument, or [`CROSS`].
    pub instrument: u32,
    /// Its state.
    pub state: UnitState,
}

impl Unit {
    /// Whether this is an account's cross part.
    pub const fn is_cross(&self) -> bool {
        self.instrument == CROSS
    }
}

/// All units, with the isolated ones findable by (account, instrument).
#[derive(Debug, Default)]
pub struct Units {
    pub(super) units: Vec<Unit>,
    pub(super) isolated: HashMap<(u32, u32), u32>,
    pub(super) free: Vec<u32>,
}

impl Units {
    /// One cross unit per account, numbered like the accounts.
    pub fn new(accounts: usize) -> Units {
        Units {
            units: (0..accounts as u32)
                .map(|account| Unit {
                    account,
                    instrument: CROSS,
                    state: UnitState::Flat,
                })
                .collect(),
            isolated: HashMap::new(),
            free: Vec::new(),
        }
    }

    /// Number of unit slots (free ones included).
    pub fn len(&self) -> usize {
        self.units.len()
    }

    /// Whether there is no unit.
    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// A unit by id.
    pub fn get(&self, unit: u32) -> Option<&Unit> {
        self.units.get(unit as usize)
    }

    /// Sets a unit's state; unknown ids are ignored.
    pub fn set_state(&mut self, unit: u32, state: UnitState) {
        if let Some(u) = self.units.get_mut(unit as usize) {
            u.state = state;
        }
    }

    /// The isolated unit of (account, instrument), if that position is isolated and open.
    pub fn isolated(&self, account: u32, instrument: u32) -> Option<u32> {
        self.isolated.get(&(account, instrument)).copied()
    }

    /// The isolated unit of (account, instrument), allocating one if needed.
    pub fn isolated_or_insert(&mut self, account: u32, instrument: u32) -> u32 {
        if let Some(&u) = self.isolated.get(&(account, instrument)) {
            return u;
        }
        let unit = Unit {
            account,
            instrument,
            state: UnitState::Flat,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.units[id as usize] = unit;
                id
            }
            None => {
                self.units.push(unit);
                (self.units.len() - 1) as u32
            }
        };
        self.isolated.insert((account, instrument), id);
        id
    }

    /// Frees the isolated unit of (account, instrument) once its position has closed.
    pub fn release_isolated(&mut self, account: u32, instrument: u32) {
        if let Some(id) = self.isolated.remove(&(account, instrument)) {
            self.units[id as usize].state = UnitState::Flat;
            self.free.push(id);
        }
    }

    /// Every unit id with its unit (free isolated slots show as flat).
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Unit)> {
        self.units.iter().enumerate().map(|(i, u)| (i as u32, u))
    }

    /// Heap bytes, for memory reports (hash map estimated at its capacity).
    pub fn heap_bytes(&self) -> usize {
        self.units.capacity() * std::mem::size_of::<Unit>()
            + self.free.capacity() * 4
            + self.isolated.capacity() * (std::mem::size_of::<((u32, u32), u32)>() + 1)
    }
}
