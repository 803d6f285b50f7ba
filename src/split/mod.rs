//! The pure algorithms a route splits requests by. Leaves: nothing here knows the plan.
//! - [`round_robin`]: the smooth weighted round robin;
//! - [`sticky`]: a sticky key's version (weighted rendezvous hashing);
//! - [`rollout`]: a version's share of the route moving through steps over time;
//! - [`guard`]: taking a failing version out of the split, and back;
//! - [`fault`]: aborts and delays for drills, drawn exactly.

pub mod fault;
pub mod guard;
pub mod rollout;
pub mod round_robin;
pub mod sticky;
