//! CRC-32C (Castagnoli), the checksum of TFRecord framing, and TFRecord's masking of it.

/// The reflected Castagnoli polynomial.
const POLY: u32 = 0x82F6_3B78;

/// One byte's worth of CRC steps for every byte value.
const TABLE: [u32; 256] = table();

const fn table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

/// CRC-32C of `data` (initial value and final XOR `0xFFFF_FFFF`, as in iSCSI and TFRecord).
pub fn crc32c(data: &[u8]) -> u32 {
    !data.iter().fold(!0u32, |c, &b| TABLE[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8))
}

/// The CRC as TFRecord stores it: rotated and offset, because a CRC of data that itself
/// holds CRCs is weak (TensorFlow `lib/hash/crc32c.h`, `Mask`).
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let c = crc32c(data);
    c.rotate_right(15).wrapping_add(0xA282_EAD8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_values() {
        // The "check" value of CRC-32C (RFC 3720 §B.4 catalogue entry).
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
        // RFC 3720 §B.4: 32 bytes of zeros, and of 0xFF.
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
    }

    #[test]
    fn masked_values_match_tensorboards_own_writer() {
        // From `tensorboard.summary.writer.record_writer.masked_crc32c`.
        assert_eq!(masked_crc32c(b"123456789"), 0xC78A_B0E5);
        // The length field of an empty record.
        assert_eq!(masked_crc32c(&[0u8; 8]), 0x0798_0329);
    }
}
