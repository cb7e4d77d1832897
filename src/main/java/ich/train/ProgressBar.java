package ich.train;

import java.io.PrintStream;
import java.util.Locale;

/**
 * One line of progress for a loop of known length: a bar, the running loss, images per second and the time
 * left, and on a GPU its utilisation ({@code GPU 97%}, NVML's latest sample; {@code GPU --%} when unknown), which
 * says whether the GPU or the loader is the bottleneck. On a terminal the line redraws in place at most four times a second; into a file or pipe it prints a
 * line at every tenth of the way, so logs stay short.
 */
public final class ProgressBar {
    private static final int WIDTH = 24;

    private final PrintStream out;
    private final String label;
    private final int total;
    private final boolean terminal;
    private final boolean gpu;
    private final long start = System.nanoTime();
    private long lastDraw;
    private int lastDecile = -1;
    private long images;
    private int gpuPercent = -1;

    public ProgressBar(PrintStream out, String label, int total, boolean terminal) {
        this(out, label, total, terminal, false);
    }

    /** {@code gpu}: the loop runs on a GPU, and the line shows its utilisation. */
    public ProgressBar(PrintStream out, String label, int total, boolean terminal, boolean gpu) {
        this.out = out;
        this.label = label;
        this.total = Math.max(1, total);
        this.terminal = terminal;
        this.gpu = gpu;
    }

    /** After step {@code done} (1-based) that processed {@code batchImages} images, with the mean loss so far. */
    public void update(int done, int batchImages, double meanLoss) {
        update(done, batchImages, meanLoss, -1);
    }

    /** As {@link #update(int, int, double)}, with the GPU's utilisation in percent (-1: unknown; ignored on the CPU). */
    public void update(int done, int batchImages, double meanLoss, int gpuPercent) {
        draw(done, batchImages, meanLoss, true, gpuPercent);
    }

    /**
     * As {@link #update(int, int, double, int)} before any loss is known ({@code loss --}): a training loop reads a
     * step's loss only once it has queued the next, so after the first step there is none yet.
     */
    public void update(int done, int batchImages, int gpuPercent) {
        draw(done, batchImages, Double.NaN, false, gpuPercent);
    }

    private void draw(int done, int batchImages, double meanLoss, boolean lossKnown, int gpuPercent) {
        this.gpuPercent = gpuPercent;
        images += batchImages;
        long now = System.nanoTime();
        int decile = done * 10 / total;
        boolean last = done >= total;
        if (terminal) {
            if (!last && now - lastDraw < 250_000_000L) return;
            lastDraw = now;
            out.print("\r" + line(done, meanLoss, lossKnown, now) + (last ? System.lineSeparator() : ""));
        } else {
            if (decile == lastDecile && !last) return;
            lastDecile = decile;
            out.println(line(done, meanLoss, lossKnown, now));
        }
        out.flush();
    }

    public double imagesPerSecond() {
        double s = (System.nanoTime() - start) / 1e9;
        return s > 0 ? images / s : 0;
    }

    String line(int done, double meanLoss, boolean lossKnown, long now) {
        double seconds = (now - start) / 1e9;
        int filled = (int) ((long) WIDTH * Math.min(done, total) / total);
        double eta = done > 0 ? seconds * (total - done) / done : Double.NaN;
        String utilisation = !gpu ? "" : gpuPercent < 0 ? " GPU --%" : " GPU " + gpuPercent + "%";
        String loss = lossKnown ? String.format(Locale.ROOT, "%.4f", meanLoss) : "--";
        return String.format(Locale.ROOT, "%s [%s%s] %d/%d loss %s %.1f img/s%s %s %s", label, "#".repeat(filled),
                ".".repeat(WIDTH - filled), done, total, loss, seconds > 0 ? images / seconds : 0, utilisation,
                done >= total ? "took" : "ETA", clock(done >= total ? seconds : eta));
    }

    static String clock(double seconds) {
        if (Double.isNaN(seconds) || Double.isInfinite(seconds)) return "--:--";
        long s = Math.round(seconds);
        return s >= 3600 ? String.format(Locale.ROOT, "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
                : String.format(Locale.ROOT, "%d:%02d", s / 60, s % 60);
    }
}
