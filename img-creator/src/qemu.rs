//! qemu: KVM probe and boot-to-marker (helper C fills this).
