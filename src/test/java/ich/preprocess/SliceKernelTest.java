package ich.preprocess;

import ich.dicom.FrameTransform;
import ich.dicom.ImageHeader;
import ich.hu.HounsfieldTransform;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

class SliceKernelTest {
    private static final ValueLayout.OfShort LE16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    /** Maps HU 0..1000 linearly to 0..1, so expected values are easy to compute by hand. */
    private static final Window IDENTITY = Window.linear("identity", 500, 1000);

    static ImageHeader header(int rows, int columns) {
        return new ImageHeader("1.2.840.10008.5.1.4.1.1.2", "1.2.3", "P", "1.2", "1.2.3.4", "CT", new double[0], new double[0],
                new double[0], Double.NaN, rows, columns, 1, 1, 16, 16, 15, 1, "MONOCHROME2", 0, 1, 0, new double[0], new double[0],
                null, null, null, List.of(new FrameTransform(1, 0, new double[0], new double[0])), true);
    }

    static MemorySegment pixels(int[] hu) {
        MemorySegment s = Arena.ofAuto().allocate(2L * hu.length);
        for (int i = 0; i < hu.length; i++) s.set(LE16, 2L * i, (short) hu[i]);
        return s;
    }

    static float[] run(int[] hu, int rows, int columns, CropBox box, boolean flip, int outH, int outW, Window... windows) {
        return run(hu, rows, columns, box, flip, outH, outW, SliceKernel.Layout.NCHW, null, windows);
    }

    static float[] run(int[] hu, int rows, int columns, CropBox box, boolean flip, int outH, int outW,
                       SliceKernel.Layout layout, SliceKernel.Normalization norm, Window... windows) {
        int n = windows.length * outH * outW;
        MemorySegment out = Arena.ofAuto().allocate(4L * (n + 2));
        out.fill((byte) 0xFF); // poison: NaN everywhere
        SliceKernel.run(pixels(hu), rows, columns, HounsfieldTransform.of(header(rows, columns), 0), windows, box, flip,
                outH, outW, norm, layout, out, 4, new SliceKernel.Scratch());
        float[] result = new float[n];
        for (int i = 0; i < n; i++) result[i] = out.getAtIndex(ValueLayout.JAVA_FLOAT, i + 1);
        assertTrue(Float.isNaN(out.getAtIndex(ValueLayout.JAVA_FLOAT, 0)) && Float.isNaN(out.getAtIndex(ValueLayout.JAVA_FLOAT, n + 1)),
                "wrote outside its slot");
        for (float v : result) assertFalse(Float.isNaN(v), "an output element was not written");
        return result;
    }

    @Test
    void upscaleUsesPixelCentresAndRepeatsEdges() {
        // [[0, 100], [200, 300]] to 4 x 4: as OpenCV INTER_LINEAR gives [[0, .25, .75, 1], ...] x 100.
        float[] out = run(new int[]{0, 100, 200, 300}, 2, 2, CropBox.whole(2, 2), false, 4, 4, IDENTITY);
        float[] expected = {
                0, 25, 75, 100,
                50, 75, 125, 150,
                150, 175, 225, 250,
                200, 225, 275, 300};
        for (int i = 0; i < 16; i++) assertEquals(expected[i] / 1000f, out[i], 1e-6f, "pixel " + i);
    }

    @Test
    void downscaleByTwoAveragesPixelPairs() {
        int[] hu = new int[16];
        for (int i = 0; i < 16; i++) hu[i] = 10 * i;
        float[] out = run(hu, 4, 4, CropBox.whole(4, 4), false, 2, 2, IDENTITY);
        // Output (0,0) samples source (0.5, 0.5): mean of hu[0], hu[1], hu[4], hu[5] = 25.
        assertArrayEquals(new float[]{0.025f, 0.045f, 0.105f, 0.125f}, out, 1e-6f);
    }

    @Test
    void cropAndFlipPickTheRightPixels() {
        int[] hu = new int[16];
        for (int i = 0; i < 16; i++) hu[i] = 10 * i;
        float[] out = run(hu, 4, 4, new CropBox(1, 2, 2, 2), false, 2, 2, IDENTITY);
        assertArrayEquals(new float[]{0.09f, 0.10f, 0.13f, 0.14f}, out, 1e-6f);
        float[] flipped = run(hu, 4, 4, new CropBox(1, 2, 2, 2), true, 2, 2, IDENTITY);
        assertArrayEquals(new float[]{0.10f, 0.09f, 0.14f, 0.13f}, flipped, 1e-6f);
    }

    @Test
    void windowsApplyBeforeInterpolation() {
        // Between -100 HU and +100 HU the brain window (0..80) gives (0 + 1) / 2 = 0.5, not window(0) = 0.
        float[] out = run(new int[]{-100, 100}, 1, 2, CropBox.whole(2, 1), false, 1, 1, Window.BRAIN);
        assertEquals(0.5f, out[0], 1e-6f);
    }

    @Test
    void nativeSizeEqualsPerPixelWindowsOnRandomHu() {
        SplittableRandom rnd = new SplittableRandom();
        int rows = 37, columns = 53;
        int[] hu = new int[rows * columns];
        for (int i = 0; i < hu.length; i++) hu[i] = rnd.nextInt(-1100, 2000);
        Window[] bsb = {Window.BRAIN, Window.SUBDURAL, Window.SOFT_TISSUE};
        float[] out = run(hu, rows, columns, CropBox.whole(columns, rows), false, rows, columns, bsb);
        for (int k = 0; k < 3; k++) {
            for (int i = 0; i < hu.length; i++) assertEquals(bsb[k].apply(hu[i]), out[k * hu.length + i], "channel " + k + " pixel " + i);
        }
    }

    @Test
    void resampledChannelsAreTheInterpolatedPerPixelWindows() {
        // The kernel maps a linear window's (v - low) * scale once, after interpolating clamped HU; the seed's order
        // is to window every source pixel, then resize. Interpolation commutes with an affine map, so the two agree
        // but for fp32 rounding: checked against that order in double, on random HU, a fractional box and a flip.
        SplittableRandom rnd = new SplittableRandom();
        int rows = 61, columns = 47, outH = 29, outW = 33;
        int[] hu = new int[rows * columns];
        for (int i = 0; i < hu.length; i++) hu[i] = rnd.nextInt(-1100, 2000);
        Window[] windows = {Window.BRAIN, Window.SUBDURAL, Window.SOFT_TISSUE, Window.sigmoid("brain-sigmoid", 40, 80)};
        CropBox box = new CropBox(2.75, 5.5, 41.5, 53.25);
        float[] out = run(hu, rows, columns, box, true, outH, outW, windows);
        for (int k = 0; k < windows.length; k++) {
            for (int oy = 0; oy < outH; oy++) {
                double sy = Math.min(Math.max(box.y() + (oy + 0.5) * box.height() / outH - 0.5, 0), rows - 1);
                int y0 = (int) sy, y1 = Math.min(y0 + 1, rows - 1);
                for (int ox = 0; ox < outW; ox++) {
                    double sx = Math.min(Math.max(box.x() + (ox + 0.5) * box.width() / outW - 0.5, 0), columns - 1);
                    int x0 = (int) sx, x1 = Math.min(x0 + 1, columns - 1);
                    double top = lerp(windows[k].apply(hu[y0 * columns + x0]), windows[k].apply(hu[y0 * columns + x1]), sx - x0);
                    double bottom = lerp(windows[k].apply(hu[y1 * columns + x0]), windows[k].apply(hu[y1 * columns + x1]), sx - x0);
                    float got = out[(k * outH + oy) * outW + (outW - 1 - ox)];
                    assertEquals(lerp(top, bottom, sy - y0), got, 1e-5, windows[k] + " at (" + ox + ", " + oy + ")");
                }
            }
        }
    }

    private static double lerp(double a, double b, double f) {
        return a + (b - a) * f;
    }

    @Test
    void nhwcIsTheTransposeOfNchwAndNormalisationApplies() {
        SplittableRandom rnd = new SplittableRandom();
        int[] hu = new int[64 * 48];
        for (int i = 0; i < hu.length; i++) hu[i] = rnd.nextInt(-200, 300);
        Window[] bsb = {Window.BRAIN, Window.SUBDURAL, Window.SOFT_TISSUE};
        CropBox box = new CropBox(3.5, 7.25, 40, 30);
        float[] nchw = run(hu, 64, 48, box, true, 20, 24, SliceKernel.Layout.NCHW, null, bsb);
        float[] nhwc = run(hu, 64, 48, box, true, 20, 24, SliceKernel.Layout.NHWC, null, bsb);
        float[] norm = run(hu, 64, 48, box, true, 20, 24, SliceKernel.Layout.NCHW, SliceKernel.Normalization.IMAGENET, bsb);
        var m = SliceKernel.Normalization.IMAGENET;
        for (int k = 0; k < 3; k++) {
            for (int p = 0; p < 20 * 24; p++) {
                assertEquals(nchw[k * 480 + p], nhwc[p * 3 + k]);
                assertEquals((nchw[k * 480 + p] - m.mean()[k]) / m.std()[k], norm[k * 480 + p], 1e-5f);
            }
        }
    }

    @Test
    void resizeThenCropEqualsTheFusedCropBox() {
        // 512 -> 256 then a 224 crop at (13, 21) equals one resampling of the source box (26, 42, 448, 448).
        SplittableRandom rnd = new SplittableRandom();
        int n = 512;
        int[] hu = new int[n * n];
        for (int i = 0; i < hu.length; i++) hu[i] = rnd.nextInt(-1000, 1500);
        float[] resized = run(hu, n, n, CropBox.whole(n, n), false, 256, 256, Window.SOFT_TISSUE);
        float[] fused = run(hu, n, n, new CropBox(26, 42, 448, 448), false, 224, 224, Window.SOFT_TISSUE);
        for (int y = 0; y < 224; y++) {
            for (int x = 0; x < 224; x++) {
                assertEquals(resized[(y + 21) * 256 + x + 13], fused[y * 224 + x], 1e-6f, "(" + x + ", " + y + ")");
            }
        }
    }
}
