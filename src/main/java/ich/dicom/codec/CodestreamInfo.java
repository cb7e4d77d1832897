package ich.dicom.codec;

import java.io.IOException;

/**
 * The frame header of a JPEG (T.81 B.2.2 SOFn), JPEG-LS (T.87 C.2.2 SOF55) or JPEG 2000 (T.800 A.5.1 SIZ) codestream,
 * read before any
 * decoder runs so that dimensions can be checked against the DICOM header and nothing is allocated for a
 * codestream that claims a different or huge image.
 */
public record CodestreamInfo(int marker, int precision, int width, int height, int components, boolean signed) {

    public boolean isJpegLossless() { return marker == 0xC3 || marker == 0xC7 || marker == 0xCB || marker == 0xCF; }

    public boolean isJpegSequentialHuffman() { return marker == 0xC0 || marker == 0xC1; }

    /** SOF55 (T.87 C.2.2), the frame header of JPEG-LS. */
    public boolean isJpegLs() { return marker == 0xF7; }

    public static CodestreamInfo jpeg(byte[] b) throws IOException {
        if (b.length < 4 || (b[0] & 0xFF) != 0xFF || (b[1] & 0xFF) != 0xD8) throw new IOException("JPEG: codestream does not start with SOI (FFD8)");
        int p = 2;
        while (p + 4 <= b.length) {
            if ((b[p] & 0xFF) != 0xFF) throw new IOException("JPEG: expected a marker at byte " + p);
            int marker = b[p + 1] & 0xFF;
            if (marker == 0xFF) { p++; continue; } // fill byte (B.1.1.2)
            int len = ((b[p + 2] & 0xFF) << 8) | (b[p + 3] & 0xFF);
            if ((marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC) || marker == 0xF7) {
                if (p + 10 > b.length) throw new IOException("JPEG: truncated SOF segment at byte " + p);
                int precision = b[p + 4] & 0xFF;
                int height = ((b[p + 5] & 0xFF) << 8) | (b[p + 6] & 0xFF);
                int width = ((b[p + 7] & 0xFF) << 8) | (b[p + 8] & 0xFF);
                int comps = b[p + 9] & 0xFF;
                if (marker == 0xF7 && (width == 0 || height == 0)) {
                    long[] size = jpegLsOversize(b, p + 2 + len);
                    if (size != null) {
                        if (size[0] > 65535 || size[1] > 65535) {
                            throw new IOException("JPEG-LS: image size " + size[1] + " x " + size[0] + " in LSE id 4");
                        }
                        height = (int) size[0];
                        width = (int) size[1];
                    }
                }
                return new CodestreamInfo(marker, precision, width, height, comps, false);
            }
            if (marker == 0xDA || marker == 0xD9) break;
            if (len < 2) throw new IOException("JPEG: marker segment FF" + Integer.toHexString(marker).toUpperCase() + " with length " + len);
            p += 2 + len;
        }
        throw new IOException("JPEG: no SOF marker before the scan data");
    }

    /**
     * T.87 C.2.4.1.4: a frame header with a zero dimension takes the size from an LSE segment with id 4 (Wxy bytes of
     * height, then of width) before the scan. Returns {height, width}, or null when there is none.
     */
    private static long[] jpegLsOversize(byte[] b, int p) {
        while (p + 4 <= b.length && (b[p] & 0xFF) == 0xFF) {
            int marker = b[p + 1] & 0xFF;
            int len = ((b[p + 2] & 0xFF) << 8) | (b[p + 3] & 0xFF);
            if (marker == 0xDA || len < 2 || p + 2 + len > b.length) return null;
            if (marker == 0xF8 && len >= 4 && (b[p + 4] & 0xFF) == 4) {
                int wxy = b[p + 5] & 0xFF;
                if (wxy < 2 || wxy > 4 || len != 4 + 2 * wxy) return null;
                long y = 0, x = 0;
                for (int i = 0; i < wxy; i++) {
                    y = (y << 8) | (b[p + 6 + i] & 0xFF);
                    x = (x << 8) | (b[p + 6 + wxy + i] & 0xFF);
                }
                return new long[]{y, x};
            }
            p += 2 + len;
        }
        return null;
    }

    public static CodestreamInfo jpeg2000(byte[] b) throws IOException {
        int p = 0;
        // A JP2 file (T.800 Annex I) wraps the codestream in boxes; DICOM requires the bare codestream, but
        // some writers embed JP2. Find the contiguous codestream box 'jp2c'.
        if (b.length >= 12 && b[4] == 'j' && b[5] == 'P' && b[6] == ' ' && b[7] == ' ') {
            p = -1;
            for (int i = 0; i + 8 <= b.length; i++) {
                if (b[i] == 'j' && b[i + 1] == 'p' && b[i + 2] == '2' && b[i + 3] == 'c') { p = i + 4; break; }
            }
            if (p < 0) throw new IOException("JPEG 2000: JP2 file without a codestream box");
        }
        if (p + 42 > b.length || (b[p] & 0xFF) != 0xFF || (b[p + 1] & 0xFF) != 0x4F || (b[p + 2] & 0xFF) != 0xFF || (b[p + 3] & 0xFF) != 0x51) {
            throw new IOException("JPEG 2000: codestream does not start with SOC (FF4F) and SIZ (FF51)");
        }
        int q = p + 4;
        long xsiz = u32(b, q + 4), ysiz = u32(b, q + 8), xosiz = u32(b, q + 12), yosiz = u32(b, q + 16);
        int csiz = ((b[q + 36] & 0xFF) << 8) | (b[q + 37] & 0xFF);
        if (q + 38 + 3L * csiz > b.length || csiz < 1) throw new IOException("JPEG 2000: truncated SIZ segment");
        int ssiz = b[q + 38] & 0xFF;
        long w = xsiz - xosiz, h = ysiz - yosiz;
        if (w <= 0 || h <= 0 || w > 65535 || h > 65535) throw new IOException("JPEG 2000: image size " + w + " x " + h + " in SIZ");
        return new CodestreamInfo(0x51, (ssiz & 0x7F) + 1, (int) w, (int) h, csiz, (ssiz & 0x80) != 0);
    }

    private static long u32(byte[] b, int p) {
        return ((long) (b[p] & 0xFF) << 24) | ((b[p + 1] & 0xFF) << 16) | ((b[p + 2] & 0xFF) << 8) | (b[p + 3] & 0xFF);
    }
}
