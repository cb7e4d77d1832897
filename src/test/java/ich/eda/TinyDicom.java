package ich.eda;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Test-only writer of small 16-bit grey DICOM images (Part 10, Implicit VR Little Endian) with the header
 * fields the EDA and the previews read. Fields left null are not written.
 */
public final class TinyDicom {
    public String studyUid = "1.2.3";
    /** (0008,0060), omitted when null. */
    public String modality = "CT";
    /** (0008,0008) Image Type, backslash-separated values; omitted when null. */
    public String imageType;
    /** (0020,0037) Image Orientation (Patient) as a DS string, e.g. {@code 0\\1\\0\\0\\0\\-1}; absent when null. */
    public String imageOrientation;
    public String photometric = "MONOCHROME2";
    public int rows = 4, columns = 4, frames = 1;
    public int bitsStored = 16, pixelRepresentation = 1;
    public String windowCenter = "40", windowWidth = "80";
    public String rescaleIntercept = "-1024", rescaleSlope = "1";
    /** Stored values, frames one after another, rows * columns each; low 16 bits written. */
    public int[] pixels;

    public TinyDicom pixels(int... values) {
        this.pixels = values;
        return this;
    }

    public Path write(Path file) throws IOException {
        Files.createDirectories(file.toAbsolutePath().getParent());
        Files.write(file, bytes());
        return file;
    }

    public byte[] bytes() {
        int n = rows * columns * frames;
        int[] px = pixels != null ? pixels : new int[n];
        if (px.length != n) throw new IllegalArgumentException(px.length + " pixels for " + n);
        ByteArrayOutputStream meta = new ByteArrayOutputStream();
        explicit(meta, 0x0002, 0x0010, "UI", ui("1.2.840.10008.1.2"));
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(new byte[128]);
        out.writeBytes("DICM".getBytes(StandardCharsets.US_ASCII));
        explicit(out, 0x0002, 0x0000, "UL", le(4, meta.size()));
        out.writeBytes(meta.toByteArray());
        if (imageType != null) implicit(out, 0x0008, 0x0008, str(imageType));
        if (modality != null) implicit(out, 0x0008, 0x0060, str(modality));
        if (studyUid != null) implicit(out, 0x0020, 0x000D, ui(studyUid));
        if (imageOrientation != null) implicit(out, 0x0020, 0x0037, str(imageOrientation));
        implicit(out, 0x0028, 0x0002, le(2, 1));
        implicit(out, 0x0028, 0x0004, str(photometric));
        if (frames > 1) implicit(out, 0x0028, 0x0008, str(Integer.toString(frames)));
        implicit(out, 0x0028, 0x0010, le(2, rows));
        implicit(out, 0x0028, 0x0011, le(2, columns));
        implicit(out, 0x0028, 0x0100, le(2, 16));
        implicit(out, 0x0028, 0x0101, le(2, bitsStored));
        implicit(out, 0x0028, 0x0102, le(2, bitsStored - 1));
        implicit(out, 0x0028, 0x0103, le(2, pixelRepresentation));
        if (windowCenter != null) implicit(out, 0x0028, 0x1050, str(windowCenter));
        if (windowWidth != null) implicit(out, 0x0028, 0x1051, str(windowWidth));
        if (rescaleIntercept != null) implicit(out, 0x0028, 0x1052, str(rescaleIntercept));
        if (rescaleSlope != null) implicit(out, 0x0028, 0x1053, str(rescaleSlope));
        ByteBuffer data = ByteBuffer.allocate(2 * n).order(ByteOrder.LITTLE_ENDIAN);
        for (int v : px) data.putShort((short) v);
        implicit(out, 0x7FE0, 0x0010, data.array());
        return out.toByteArray();
    }

    private static void implicit(ByteArrayOutputStream out, int group, int element, byte[] value) {
        out.writeBytes(le(2, group));
        out.writeBytes(le(2, element));
        out.writeBytes(le(4, value.length));
        out.writeBytes(value);
    }

    private static void explicit(ByteArrayOutputStream out, int group, int element, String vr, byte[] value) {
        out.writeBytes(le(2, group));
        out.writeBytes(le(2, element));
        out.writeBytes(vr.getBytes(StandardCharsets.US_ASCII));
        out.writeBytes(le(2, value.length));
        out.writeBytes(value);
    }

    private static byte[] le(int bytes, int v) {
        byte[] b = new byte[bytes];
        for (int i = 0; i < bytes; i++) b[i] = (byte) (v >>> (8 * i));
        return b;
    }

    /** A string padded with a space to even length. */
    private static byte[] str(String s) { return pad(s, (byte) ' '); }

    /** A UID padded with NUL to even length. */
    private static byte[] ui(String s) { return pad(s, (byte) 0); }

    private static byte[] pad(String s, byte pad) {
        byte[] b = s.getBytes(StandardCharsets.US_ASCII);
        if ((b.length & 1) == 0) return b;
        byte[] p = java.util.Arrays.copyOf(b, b.length + 1);
        p[b.length] = pad;
        return p;
    }
}
