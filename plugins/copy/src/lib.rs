//! The copy plugin (being written).
