//! Live media: squashfs root, ISO (helper C fills this).
