//! Real PNG files for the simulated Midjourney's images, written by hand (no image crate):
//! 8-bit RGB, one zlib stream of *stored* (uncompressed) deflate blocks, CRC-32 per chunk,
//! Adler-32 over the pixels. Any decoder reads them; the archive's signature check and
//! hashing see real, distinct bytes.

/// The eight bytes every PNG starts with.
pub const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// The largest payload of one stored deflate block.
const MAX_STORED_BLOCK: usize = 65_535;

/// A `width` x `height` RGB image whose colours come from `seed`: a diagonal gradient over
/// a base colour, with a checkerboard. A `tEXt` chunk names the seed, so two different seeds
/// always give different bytes, even where their colours happen to agree.
pub fn png(width: u32, height: u32, seed: u64) -> Vec<u8> {
    let base = seed.to_le_bytes();
    let (red, green, blue) = (base[0] ^ base[3], base[1] ^ base[4], base[2] ^ base[5]);
    let row_bytes = 1 + 3 * width as usize;
    let mut pixels = Vec::with_capacity(row_bytes * height as usize);
    for y in 0..height {
        pixels.push(0); // filter type None
        for x in 0..width {
            let square = if (x / 16 + y / 16) % 2 == 0 { 0 } else { 48 };
            let shade = ((x + y) * 255 / (width + height).max(1)) as u8;
            pixels.push(red.wrapping_add(shade));
            pixels.push(green.wrapping_add(square));
            pixels.push(blue.wrapping_sub(shade / 2));
        }
    }

    let mut header = Vec::with_capacity(13);
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]); // bit depth 8, RGB, deflate, no filter set, no interlace

    let mut file = SIGNATURE.to_vec();
    write_chunk(&mut file, b"IHDR", &header);
    write_chunk(
        &mut file,
        b"tEXt",
        format!("Comment\0mjlink simulation, seed {seed:016x}").as_bytes(),
    );
    write_chunk(&mut file, b"IDAT", &zlib_stored(&pixels));
    write_chunk(&mut file, b"IEND", &[]);
    file
}

fn write_chunk(file: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    file.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = file.len();
    file.extend_from_slice(kind);
    file.extend_from_slice(data);
    let crc = crc32(&file[start..]);
    file.extend_from_slice(&crc.to_be_bytes());
}

/// A zlib stream (RFC 1950) of stored deflate blocks (RFC 1951, BTYPE 00).
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let n_blocks = data.len().div_ceil(MAX_STORED_BLOCK).max(1);
    let mut out = Vec::with_capacity(data.len() + n_blocks * 5 + 6);
    out.extend_from_slice(&[0x78, 0x01]); // deflate, 32 KiB window, no dictionary; 0x7801 % 31 == 0
    let mut blocks = data.chunks(MAX_STORED_BLOCK).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        let is_final = blocks.peek().is_none();
        out.push(u8::from(is_final));
        let length = block.len() as u16;
        out.extend_from_slice(&length.to_le_bytes());
        out.extend_from_slice(&(!length).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

/// CRC-32 (IEEE, reflected, as PNG and zlib use it), bit by bit: the images are small.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xedb8_8320 & mask);
        }
    }
    !crc
}

/// Adler-32 (RFC 1950).
pub fn adler32(data: &[u8]) -> u32 {
    const MODULUS: u32 = 65_521;
    let (mut low, mut high) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for &byte in chunk {
            low += u32::from(byte);
            high += low;
        }
        low %= MODULUS;
        high %= MODULUS;
    }
    (high << 16) | low
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chunks of a PNG as (type, data), checking each CRC on the way.
    fn chunks(file: &[u8]) -> Vec<([u8; 4], Vec<u8>)> {
        assert_eq!(&file[..8], &SIGNATURE);
        let mut chunks = Vec::new();
        let mut at = 8;
        while at < file.len() {
            let length = u32::from_be_bytes(file[at..at + 4].try_into().unwrap()) as usize;
            let kind: [u8; 4] = file[at + 4..at + 8].try_into().unwrap();
            let data = file[at + 8..at + 8 + length].to_vec();
            let crc = u32::from_be_bytes(file[at + 8 + length..at + 12 + length].try_into().unwrap());
            assert_eq!(crc, crc32(&file[at + 4..at + 8 + length]), "CRC of {:?}", kind);
            chunks.push((kind, data));
            at += 12 + length;
        }
        assert_eq!(at, file.len());
        chunks
    }

    /// Inflates a zlib stream made only of stored blocks, checking the Adler-32.
    fn inflate_stored(stream: &[u8]) -> Vec<u8> {
        assert_eq!(
            u16::from_be_bytes([stream[0], stream[1]]) % 31,
            0,
            "zlib header check"
        );
        let mut out = Vec::new();
        let mut at = 2;
        loop {
            let header = stream[at];
            assert_eq!(header & 0b110, 0, "stored block");
            let length = u16::from_le_bytes([stream[at + 1], stream[at + 2]]);
            let inverse = u16::from_le_bytes([stream[at + 3], stream[at + 4]]);
            assert_eq!(length, !inverse);
            out.extend_from_slice(&stream[at + 5..at + 5 + length as usize]);
            at += 5 + length as usize;
            if header & 1 == 1 {
                break;
            }
        }
        let adler = u32::from_be_bytes(stream[at..at + 4].try_into().unwrap());
        assert_eq!(adler, adler32(&out));
        assert_eq!(at + 4, stream.len());
        out
    }

    #[test]
    fn checksums_match_known_values() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b"IEND"), 0xae42_6082);
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
    }

    #[test]
    fn a_png_has_the_signature_valid_chunks_and_its_dimensions() {
        // 200 x 120 RGB is 72,120 bytes of rows: two stored blocks.
        let file = png(200, 120, 0x1234_5678_9abc_def0);
        let chunks = chunks(&file);
        let kinds: Vec<&[u8]> = chunks.iter().map(|(kind, _)| &kind[..]).collect();
        assert_eq!(kinds, [&b"IHDR"[..], b"tEXt", b"IDAT", b"IEND"]);
        let header = &chunks[0].1;
        assert_eq!(u32::from_be_bytes(header[0..4].try_into().unwrap()), 200);
        assert_eq!(u32::from_be_bytes(header[4..8].try_into().unwrap()), 120);
        assert_eq!(&header[8..], &[8, 2, 0, 0, 0]);
        let rows = inflate_stored(&chunks[2].1);
        assert_eq!(rows.len(), 120 * (1 + 3 * 200));
        assert!(
            rows.chunks(1 + 3 * 200).all(|row| row[0] == 0),
            "filter byte 0 on every row"
        );
    }

    #[test]
    fn different_seeds_give_different_bytes_and_the_same_seed_the_same() {
        assert_eq!(png(128, 128, 7), png(128, 128, 7));
        assert_ne!(png(128, 128, 7), png(128, 128, 8));
        let tiny = png(1, 1, 0);
        assert_eq!(inflate_stored(&chunks(&tiny)[2].1).len(), 4);
    }
}
