//! Disks: raw, loop, converted (helper B fills this).
