//! The plugin ABI (being written).
