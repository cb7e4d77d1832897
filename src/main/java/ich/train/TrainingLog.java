package ich.train;

import ich.eda.Charts;
import ich.labels.Subtype;
import org.jfree.chart.ChartFactory;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.axis.NumberAxis;
import org.jfree.chart.plot.PlotOrientation;
import org.jfree.chart.plot.XYPlot;
import org.jfree.chart.renderer.xy.XYLineAndShapeRenderer;
import org.jfree.data.xy.XYSeries;
import org.jfree.data.xy.XYSeriesCollection;

import java.awt.BasicStroke;
import java.awt.Color;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The per-epoch record of a run: {@code metrics.csv} (rewritten whole, atomically, after every epoch so it is
 * never half written) and {@code curves.png} (training and validation loss, the weighted log loss and AUC of
 * {@code any} against the epoch).
 */
public final class TrainingLog {
    public static final String METRICS = "metrics.csv";
    public static final String CURVES = "curves.png";

    /**
     * One epoch's numbers. Validation figures are on the held-out images in eval mode; {@code waitSeconds} is the
     * time the model waited for the loader. On a GPU, {@code gpuPercent} is NVML's mean utilisation over the
     * epoch's training steps and {@code devicePeakMib} the most device memory the backend held so far; both are
     * NaN on the CPU (or unknown), and empty in metrics.csv.
     */
    public record Epoch(int epoch, String phase, double lr, int steps, int images, double trainLoss, double valLoss,
                        double valWeightedLogLoss, double[] valAuc, double[] valAccuracy, double seconds,
                        double imagesPerSecond, double waitSeconds, boolean best, double gpuPercent, double devicePeakMib) {
        /** An epoch without device figures (the CPU). */
        public Epoch(int epoch, String phase, double lr, int steps, int images, double trainLoss, double valLoss,
                     double valWeightedLogLoss, double[] valAuc, double[] valAccuracy, double seconds,
                     double imagesPerSecond, double waitSeconds, boolean best) {
            this(epoch, phase, lr, steps, images, trainLoss, valLoss, valWeightedLogLoss, valAuc, valAccuracy, seconds,
                    imagesPerSecond, waitSeconds, best, Double.NaN, Double.NaN);
        }
    }

    private final List<Epoch> epochs = new ArrayList<>();

    public List<Epoch> epochs() {
        return List.copyOf(epochs);
    }

    /** Restores the epochs of an earlier part of the run (on resume), then appends. */
    public void add(Epoch e) {
        epochs.add(e);
    }

    /** The device columns, appended after those of the first version so that files of either version read. */
    static final String DEVICE_COLUMNS = ",gpu_util_percent,device_peak_mib";

    public static String header() {
        return headerWithoutDeviceColumns() + DEVICE_COLUMNS;
    }

    /** metrics.csv's header before the device columns: such files still read (their epochs have no device figures). */
    static String headerWithoutDeviceColumns() {
        StringBuilder sb = new StringBuilder("epoch,phase,lr,steps,images,train_loss,val_loss,val_weighted_log_loss");
        for (Subtype s : Subtype.values()) sb.append(",auc_").append(s.csvName());
        for (Subtype s : Subtype.values()) sb.append(",acc_").append(s.csvName());
        return sb.append(",seconds,images_per_s,loader_wait_s,best").toString();
    }

    static String row(Epoch e) {
        StringBuilder sb = new StringBuilder();
        sb.append(e.epoch()).append(',').append(e.phase()).append(',').append(num(e.lr())).append(',').append(e.steps())
                .append(',').append(e.images()).append(',').append(num(e.trainLoss())).append(',').append(num(e.valLoss()))
                .append(',').append(num(e.valWeightedLogLoss()));
        for (double a : e.valAuc()) sb.append(',').append(num(a));
        for (double a : e.valAccuracy()) sb.append(',').append(num(a));
        return sb.append(',').append(String.format(Locale.ROOT, "%.1f,%.2f,%.1f", e.seconds(), e.imagesPerSecond(), e.waitSeconds()))
                .append(',').append(e.best() ? 1 : 0)
                .append(',').append(Double.isNaN(e.gpuPercent()) ? "" : String.format(Locale.ROOT, "%.1f", e.gpuPercent()))
                .append(',').append(Double.isNaN(e.devicePeakMib()) ? "" : String.format(Locale.ROOT, "%.1f", e.devicePeakMib())).toString();
    }

    private static String num(double v) {
        return Double.isNaN(v) ? "" : String.format(Locale.ROOT, "%.6g", v);
    }

    /** The epochs recorded in {@code runDir}'s metrics.csv (empty when there is none): what a resumed run continues. */
    public static List<Epoch> read(Path runDir) throws IOException {
        Path file = runDir.resolve(METRICS);
        if (!java.nio.file.Files.exists(file)) return List.of();
        List<String> lines = java.nio.file.Files.readAllLines(file, StandardCharsets.UTF_8);
        boolean deviceColumns = !lines.isEmpty() && lines.get(0).equals(header());
        if (!deviceColumns && (lines.isEmpty() || !lines.get(0).equals(headerWithoutDeviceColumns()))) {
            throw new IOException(file + ": not a metrics file of this version (header differs)");
        }
        List<Epoch> out = new ArrayList<>();
        int k = Subtype.COUNT;
        for (String line : lines.subList(1, lines.size())) {
            String[] c = line.split(",", -1);
            if (c.length != 8 + 2 * k + 4 + (deviceColumns ? 2 : 0)) throw new IOException(file + ": malformed row: " + line);
            double[] auc = new double[k], acc = new double[k];
            for (int i = 0; i < k; i++) {
                auc[i] = parse(c[8 + i]);
                acc[i] = parse(c[8 + k + i]);
            }
            int t = 8 + 2 * k;
            out.add(new Epoch(Integer.parseInt(c[0]), c[1], parse(c[2]), Integer.parseInt(c[3]), Integer.parseInt(c[4]), parse(c[5]),
                    parse(c[6]), parse(c[7]), auc, acc, parse(c[t]), parse(c[t + 1]), parse(c[t + 2]), c[t + 3].equals("1"),
                    deviceColumns ? parse(c[t + 4]) : Double.NaN, deviceColumns ? parse(c[t + 5]) : Double.NaN));
        }
        return out;
    }

    private static double parse(String s) {
        return s.isEmpty() ? Double.NaN : Double.parseDouble(s);
    }

    /**
     * Writes metrics.csv and curves.png into {@code runDir}. Returns null, or why curves.png could not be drawn: a GPU
     * server often has no fonts (Java's text rendering then fails with "Fontconfig head is null"), and a missing chart
     * must not end a training run whose metrics.csv holds the same numbers.
     */
    public String write(Path runDir) throws IOException {
        ich.io.Csv.write(runDir.resolve(METRICS), header(), epochs.stream().map(TrainingLog::row).toList());
        try {
            Charts.writePng(chart(), runDir.resolve(CURVES), 900, 520);
            return null;
        } catch (RuntimeException | LinkageError | InternalError e) {
            return CURVES + " not drawn (" + e + "); " + METRICS + " has the numbers";
        }
    }

    JFreeChart chart() {
        XYSeries train = new XYSeries("training loss (BCE)"), val = new XYSeries("validation loss (BCE)"),
                weighted = new XYSeries("validation weighted log loss"), auc = new XYSeries("validation AUC (any)");
        for (Epoch e : epochs) {
            int x = e.epoch() + 1;
            if (!Double.isNaN(e.trainLoss())) train.add(x, e.trainLoss());
            if (!Double.isNaN(e.valLoss())) val.add(x, e.valLoss());
            if (!Double.isNaN(e.valWeightedLogLoss())) weighted.add(x, e.valWeightedLogLoss());
            if (!Double.isNaN(e.valAuc()[0])) auc.add(x, e.valAuc()[0]);
        }
        XYSeriesCollection losses = new XYSeriesCollection();
        losses.addSeries(train);
        losses.addSeries(val);
        losses.addSeries(weighted);
        JFreeChart chart = ChartFactory.createXYLineChart("Training curves", "epoch", "loss", losses,
                PlotOrientation.VERTICAL, true, false, false);
        XYPlot plot = chart.getXYPlot();
        plot.setBackgroundPaint(Color.WHITE);
        plot.setRangeGridlinePaint(Color.LIGHT_GRAY);
        plot.setDomainGridlinePaint(Color.LIGHT_GRAY);
        ((NumberAxis) plot.getRangeAxis()).setAutoRangeIncludesZero(false);
        NumberAxis epochsAxis = (NumberAxis) plot.getDomainAxis();
        epochsAxis.setStandardTickUnits(NumberAxis.createIntegerTickUnits());
        XYLineAndShapeRenderer lines = new XYLineAndShapeRenderer(true, true);
        Color[] colors = {new Color(0x1f77b4), new Color(0xd62728), new Color(0xff7f0e)};
        for (int i = 0; i < colors.length; i++) {
            lines.setSeriesPaint(i, colors[i]);
            lines.setSeriesStroke(i, new BasicStroke(2f));
        }
        plot.setRenderer(0, lines);
        NumberAxis aucAxis = new NumberAxis("AUC (any)");
        aucAxis.setRange(0.4, 1.0);
        plot.setRangeAxis(1, aucAxis);
        plot.setDataset(1, new XYSeriesCollection(auc));
        plot.mapDatasetToRangeAxis(1, 1);
        XYLineAndShapeRenderer aucLine = new XYLineAndShapeRenderer(true, true);
        aucLine.setSeriesPaint(0, new Color(0x2ca02c));
        aucLine.setSeriesStroke(0, new BasicStroke(2f, BasicStroke.CAP_ROUND, BasicStroke.JOIN_ROUND, 1f, new float[] {6f, 4f}, 0f));
        plot.setRenderer(1, aucLine);
        return chart;
    }
}
