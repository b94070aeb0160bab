//! LZW as Go's compress/lzw writes it (LSB, 8-bit literals).
