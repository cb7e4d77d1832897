package ich.dicom;

import ich.dicom.codec.CodestreamInfo;
import ich.dicom.codec.ImageIoDecoder;
import ich.dicom.codec.JpegDctDecoder;
import ich.dicom.codec.JpegLsDecoder;
import ich.dicom.codec.RleDecoder;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/** Turns the Pixel Data element of any supported transfer syntax into {@link PixelData}. */
final class PixelDecoder {
    private static final ValueLayout.OfShort S16_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort S16_BE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);
    private static final ValueLayout.OfInt S32_LE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt S32_BE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);
    private static final ValueLayout.OfLong U64_LE = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    /**
     * No supported codec expands data more than about 1000:1 on real images (DCT: one bit per 8x8 block of
     * 16-bit samples is 1024:1). A header that claims more is hostile; refusing it keeps allocation bounded.
     */
    private static final long MAX_EXPANSION = 2048;
    private static final long ALWAYS_ALLOWED = 256L << 20;

    private PixelDecoder() {}

    static PixelData decode(DicomFile f) throws DicomFormatException {
        String name = f.name();
        ImageHeader h = f.header();
        DataSet ds = f.dataSet();
        if (!h.hasPixelData()) throw new DicomFormatException(name, -1, Tag.PIXEL_DATA, "the data set has no Pixel Data");
        long frameBytes = h.frameBytes();
        long total;
        try {
            total = Math.multiplyExact(frameBytes, (long) h.numberOfFrames());
        } catch (ArithmeticException e) {
            throw new DicomFormatException(name, ds.valueOffset(Tag.PIXEL_DATA), Tag.PIXEL_DATA, "image size overflows");
        }
        Fragments fragments = ds.fragments(Tag.PIXEL_DATA);
        TransferSyntax ts = f.transferSyntax();
        if (fragments == null) return decodeNative(f, h, ds, ts, total);

        if (ts == null) throw new UnsupportedTransferSyntaxException(name, f.transferSyntaxUid(), "unknown transfer syntax");
        if (ts.pixels() == TransferSyntax.Pixels.UNSUPPORTED) throw new UnsupportedTransferSyntaxException(name, ts.uid(), ts.displayName());
        long at = ds.valueOffset(Tag.PIXEL_DATA);
        if (ts.pixels() == TransferSyntax.Pixels.NATIVE) {
            throw new DicomFormatException(name, at, Tag.PIXEL_DATA, "encapsulated Pixel Data in " + ts.displayName() + ", which is not an encapsulated syntax");
        }
        long compressed = 0;
        for (int len : fragments.valueLengths()) compressed += Integer.toUnsignedLong(len);
        if (total > Math.max(ALWAYS_ALLOWED, compressed * MAX_EXPANSION)) {
            throw new DicomFormatException(name, at, Tag.PIXEL_DATA, "header declares " + total
                    + " bytes of pixels, more than " + compressed + " compressed bytes can hold");
        }
        List<int[]> frames = frameFragments(f, ds, fragments, h.numberOfFrames(), ts);
        MemorySegment out = f.arena().allocate(Math.max(1, total), 8).asSlice(0, total);
        MemorySegment data = ds.data();
        for (int i = 0; i < frames.size(); i++) {
            byte[] codestream = concat(data, fragments, frames.get(i));
            try {
                switch (ts.pixels()) {
                    case RLE -> RleDecoder.decodeFrame(MemorySegment.ofArray(codestream), h.rows(), h.columns(),
                            h.samplesPerPixel(), h.bitsAllocated(), out, i * frameBytes);
                    case JPEG -> decodeJpeg(codestream, h, out, i * frameBytes);
                    case JPEG_LS -> decodeJpegLs(codestream, h, out, i * frameBytes);
                    case ENCAPSULATED_NATIVE -> {
                        // PS3.5 A.4.11: the frame's native bytes, the fragment padded to even length.
                        if (codestream.length < frameBytes) {
                            throw new IOException("the fragment holds " + codestream.length + " bytes, a frame needs " + frameBytes);
                        }
                        MemorySegment.copy(MemorySegment.ofArray(codestream), 0, out, i * frameBytes, frameBytes);
                    }
                    case JPEG_2000 -> decodeJpeg2000(codestream, h, out, i * frameBytes);
                    default -> throw new IllegalStateException(ts.toString());
                }
            } catch (IOException e) {
                throw new DicomFormatException(name, fragments.valueOffsets()[frames.get(i)[0]], Tag.PIXEL_DATA,
                        "frame " + (i + 1) + " of " + frames.size() + ": " + e.getMessage(), e);
            }
        }
        return new PixelData(h.numberOfFrames(), h.rows(), h.columns(), h.samplesPerPixel(), h.bitsAllocated(), 0, out, false);
    }

    private static PixelData decodeNative(DicomFile f, ImageHeader h, DataSet ds, TransferSyntax ts, long total)
            throws DicomFormatException {
        String name = f.name();
        long at = ds.valueOffset(Tag.PIXEL_DATA);
        if (ts == null) throw new UnsupportedTransferSyntaxException(name, f.transferSyntaxUid(), "unknown transfer syntax");
        if (ts.isEncapsulated()) {
            throw new DicomFormatException(name, at, Tag.PIXEL_DATA, "Pixel Data has a defined length, but " + ts.displayName()
                    + " requires encapsulated (undefined length) Pixel Data (PS3.5 A.4)");
        }
        MemorySegment value = ds.value(Tag.PIXEL_DATA);
        if (value.byteSize() < total) {
            throw new DicomFormatException(name, at, Tag.PIXEL_DATA, "Pixel Data holds " + value.byteSize() + " bytes, but "
                    + h.numberOfFrames() + " frame(s) of " + h.rows() + " x " + h.columns() + " x " + h.samplesPerPixel()
                    + " samples at " + h.bitsAllocated() + " bits need " + total);
        }
        MemorySegment pixels = value.asSlice(0, total);
        boolean big = ds.order() == ByteOrder.BIG_ENDIAN;
        boolean inflated = ts.encoding() == TransferSyntax.Encoding.DEFLATED_EXPLICIT_LE;
        if (!big || h.bitsAllocated() <= 8) {
            return new PixelData(h.numberOfFrames(), h.rows(), h.columns(), h.samplesPerPixel(), h.bitsAllocated(),
                    h.planarConfiguration(), pixels, !inflated);
        }
        // PS3.5 7.3: big endian OW/OL values are byte-swapped per word; the native layout is little endian.
        MemorySegment out = f.arena().allocate(total, 8);
        if (h.bitsAllocated() == 16) {
            for (long p = 0; p + 1 < total; p += 2) out.set(S16_LE, p, pixels.get(S16_BE, p));
        } else {
            for (long p = 0; p + 3 < total; p += 4) out.set(S32_LE, p, pixels.get(S32_BE, p));
        }
        return new PixelData(h.numberOfFrames(), h.rows(), h.columns(), h.samplesPerPixel(), h.bitsAllocated(),
                h.planarConfiguration(), out, false);
    }

    /**
     * Which fragments make up each frame (PS3.5 A.4): the Extended Offset Table, else the Basic Offset
     * Table, else one fragment per frame, else all fragments for a single frame, else a new frame at each
     * fragment that starts with the codec's start marker.
     */
    private static List<int[]> frameFragments(DicomFile f, DataSet ds, Fragments fr, int frames, TransferSyntax ts)
            throws DicomFormatException {
        String name = f.name();
        int n = fr.count();
        long at = ds.valueOffset(Tag.PIXEL_DATA);
        if (n == 0) throw new DicomFormatException(name, at, Tag.PIXEL_DATA, "encapsulated Pixel Data has no fragments");
        if (frames > n) {
            throw new DicomFormatException(name, at, Tag.PIXEL_DATA, "Number of Frames is " + frames + " but there are only " + n + " fragments");
        }
        long[] starts = null;
        MemorySegment eot = ds.value(Tag.EXTENDED_OFFSET_TABLE);
        if (eot != null && eot.byteSize() > 0) {
            if (eot.byteSize() != 8L * frames) {
                throw new DicomFormatException(name, ds.valueOffset(Tag.EXTENDED_OFFSET_TABLE), Tag.EXTENDED_OFFSET_TABLE,
                        "Extended Offset Table has " + eot.byteSize() / 8 + " entries for " + frames + " frames");
            }
            starts = new long[frames];
            for (int i = 0; i < frames; i++) starts[i] = eot.get(U64_LE, 8L * i);
        } else if (fr.basicOffsetTableLength() > 0) {
            if (fr.basicOffsetTableLength() != 4L * frames) {
                throw new DicomFormatException(name, fr.basicOffsetTableOffset(), Tag.PIXEL_DATA,
                        "Basic Offset Table has " + fr.basicOffsetTableLength() / 4 + " entries for " + frames + " frames");
            }
            starts = new long[frames];
            for (int i = 0; i < frames; i++) {
                starts[i] = Integer.toUnsignedLong(ds.data().get(S32_LE, fr.basicOffsetTableOffset() + 4L * i));
            }
        }
        List<int[]> result = new ArrayList<>(frames);
        if (starts != null && starts[0] != 0) {
            throw new DicomFormatException(name, fr.basicOffsetTableOffset(), Tag.PIXEL_DATA,
                    "the first offset table entry is " + starts[0] + ", not 0 (PS3.5 A.4): fragments before it would be lost");
        }
        if (starts != null) {
            int[] first = new int[frames];
            int k = 0;
            for (int i = 0; i < frames; i++) {
                long target = fr.itemOffsets()[0] + starts[i];
                while (k < n && fr.itemOffsets()[k] < target) k++;
                if (k == n || fr.itemOffsets()[k] != target || (i > 0 && k <= first[i - 1])) {
                    throw new DicomFormatException(name, fr.basicOffsetTableOffset(), Tag.PIXEL_DATA,
                            "offset table entry " + i + " (" + starts[i] + ") does not point at a fragment");
                }
                first[i] = k;
            }
            for (int i = 0; i < frames; i++) result.add(new int[]{first[i], i + 1 < frames ? first[i + 1] : n});
            return result;
        }
        if (n == frames) {
            for (int i = 0; i < n; i++) result.add(new int[]{i, i + 1});
            return result;
        }
        if (frames == 1) {
            result.add(new int[]{0, n});
            return result;
        }
        if (ts.pixels() == TransferSyntax.Pixels.JPEG || ts.pixels() == TransferSyntax.Pixels.JPEG_LS || ts.pixels() == TransferSyntax.Pixels.JPEG_2000) {
            int begin = 0;
            for (int k = 1; k < n; k++) {
                if (startsFrame(ds.data(), fr.valueOffsets()[k], fr.valueLengths()[k], ts)) {
                    result.add(new int[]{begin, k});
                    begin = k;
                }
            }
            result.add(new int[]{begin, n});
            if (result.size() == frames) return result;
        }
        throw new DicomFormatException(name, at, Tag.PIXEL_DATA, "cannot tell which of " + n + " fragments belong to which of "
                + frames + " frames: no offset table and the fragments do not start frames unambiguously");
    }

    private static boolean startsFrame(MemorySegment data, long offset, int length, TransferSyntax ts) {
        if (length < 4) return false;
        int b0 = data.get(ValueLayout.JAVA_BYTE, offset) & 0xFF, b1 = data.get(ValueLayout.JAVA_BYTE, offset + 1) & 0xFF;
        int b2 = data.get(ValueLayout.JAVA_BYTE, offset + 2) & 0xFF;
        if (ts.pixels() != TransferSyntax.Pixels.JPEG_2000) return b0 == 0xFF && b1 == 0xD8 && b2 == 0xFF; // SOI then a marker
        return (b0 == 0xFF && b1 == 0x4F && b2 == 0xFF) // SOC then SIZ
                || (length >= 12 && data.get(ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN), offset + 4) == 0x6A502020);
    }

    private static byte[] concat(MemorySegment data, Fragments fr, int[] range) {
        long size = 0;
        for (int k = range[0]; k < range[1]; k++) size += Integer.toUnsignedLong(fr.valueLengths()[k]);
        byte[] out = new byte[(int) Math.min(size, Integer.MAX_VALUE - 8)];
        int p = 0;
        for (int k = range[0]; k < range[1] && p < out.length; k++) {
            int len = (int) Math.min(Integer.toUnsignedLong(fr.valueLengths()[k]), out.length - p);
            MemorySegment.copy(data, ValueLayout.JAVA_BYTE, fr.valueOffsets()[k], out, p, len);
            p += len;
        }
        return out;
    }

    private static void checkGeometry(CodestreamInfo info, ImageHeader h, String codec) throws IOException {
        if (info.width() != h.columns() || info.height() != h.rows() || info.components() != h.samplesPerPixel()) {
            throw new IOException(codec + " codestream is " + info.width() + " x " + info.height() + " x " + info.components()
                    + " but the header says " + h.columns() + " x " + h.rows() + " x " + h.samplesPerPixel());
        }
        if (info.precision() > h.bitsAllocated()) {
            throw new IOException(codec + " precision " + info.precision() + " exceeds Bits Allocated " + h.bitsAllocated());
        }
    }

    private static void decodeJpeg(byte[] codestream, ImageHeader h, MemorySegment out, long offset) throws IOException {
        CodestreamInfo info = CodestreamInfo.jpeg(codestream);
        checkGeometry(info, h, "JPEG");
        if (info.isJpegSequentialHuffman() && info.components() == 1) {
            storeShorts(JpegDctDecoder.decode(codestream, 0, codestream.length).samples(), h, out, offset);
            return;
        }
        if (!info.isJpegLossless() && !(info.isJpegSequentialHuffman() && info.precision() == 8)) {
            throw new IOException(String.format("JPEG process with SOF marker FF%02X and precision %d is not supported",
                    info.marker(), info.precision()));
        }
        store(ImageIoDecoder.decodeJpeg(codestream).samples(), h, out, offset);
    }

    private static void decodeJpegLs(byte[] codestream, ImageHeader h, MemorySegment out, long offset) throws IOException {
        CodestreamInfo info = CodestreamInfo.jpeg(codestream);
        if (!info.isJpegLs()) {
            throw new IOException(String.format("a JPEG-LS transfer syntax holds a codestream with frame header FF%02X, not SOF55 (FFF7)", info.marker()));
        }
        checkGeometry(info, h, "JPEG-LS");
        if (h.bitsAllocated() != 8 && h.bitsAllocated() != 16) {
            throw new IOException("Bits Allocated " + h.bitsAllocated() + " with JPEG-LS (which codes at most 16 bits)");
        }
        storeShorts(JpegLsDecoder.decode(codestream, 0, codestream.length).samples(), h, out, offset);
    }

    /** A codec's unsigned samples in shorts: bytes where Bits Allocated is 8, else 16-bit little-endian words. */
    private static void storeShorts(short[] s, ImageHeader h, MemorySegment out, long offset) {
        if (h.bitsAllocated() == 8) {
            for (int i = 0; i < s.length; i++) out.set(ValueLayout.JAVA_BYTE, offset + i, (byte) s[i]);
        } else {
            MemorySegment.copy(s, 0, out, S16_LE, offset, s.length);
        }
    }

    private static void decodeJpeg2000(byte[] codestream, ImageHeader h, MemorySegment out, long offset) throws IOException {
        checkGeometry(CodestreamInfo.jpeg2000(codestream), h, "JPEG 2000");
        store(ImageIoDecoder.decodeJpeg2000(codestream, (long) h.rows() * h.columns() * h.samplesPerPixel()).samples(), h, out, offset);
    }

    /** Samples in the codec's int form, written with Bits Allocated width; the bit pattern is kept as decoded. */
    private static void store(int[] samples, ImageHeader h, MemorySegment out, long offset) throws IOException {
        long expected = (long) h.rows() * h.columns() * h.samplesPerPixel();
        if (samples.length != expected) throw new IOException("decoder returned " + samples.length + " samples, expected " + expected);
        switch (h.bitsAllocated()) {
            case 8 -> { for (int i = 0; i < samples.length; i++) out.set(ValueLayout.JAVA_BYTE, offset + i, (byte) samples[i]); }
            case 16 -> { for (int i = 0; i < samples.length; i++) out.set(S16_LE, offset + 2L * i, (short) samples[i]); }
            case 32 -> { for (int i = 0; i < samples.length; i++) out.set(S32_LE, offset + 4L * i, samples[i]); }
            default -> throw new IOException("Bits Allocated " + h.bitsAllocated() + " is not supported for compressed data");
        }
    }
}
