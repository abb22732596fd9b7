//! The runtime underneath the Lua layer. Nothing here touches Lua.

pub mod blocking;
pub mod counters;
pub mod reactor;
pub mod resolver;
pub mod signals;
pub mod timers;
