package ich.eda;

import ich.labels.Subtype;
import org.jfree.chart.ChartFactory;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.annotations.XYTextAnnotation;
import org.jfree.chart.axis.CategoryAxis;
import org.jfree.chart.axis.CategoryLabelPositions;
import org.jfree.chart.axis.NumberAxis;
import org.jfree.chart.axis.SymbolAxis;
import org.jfree.chart.labels.ItemLabelAnchor;
import org.jfree.chart.labels.ItemLabelPosition;
import org.jfree.chart.labels.StandardCategoryItemLabelGenerator;
import org.jfree.chart.plot.CategoryPlot;
import org.jfree.chart.plot.PlotOrientation;
import org.jfree.chart.plot.XYPlot;
import org.jfree.chart.renderer.PaintScale;
import org.jfree.chart.renderer.category.BarRenderer;
import org.jfree.chart.renderer.category.StandardBarPainter;
import org.jfree.chart.renderer.xy.StandardXYBarPainter;
import org.jfree.chart.renderer.xy.XYBarRenderer;
import org.jfree.chart.renderer.xy.XYBlockRenderer;
import org.jfree.chart.renderer.xy.XYShapeRenderer;
import org.jfree.chart.title.PaintScaleLegend;
import org.jfree.chart.ui.RectangleEdge;
import org.jfree.chart.ui.TextAnchor;
import org.jfree.data.category.DefaultCategoryDataset;
import org.jfree.data.xy.DefaultXYZDataset;
import org.jfree.data.xy.XYIntervalSeries;
import org.jfree.data.xy.XYIntervalSeriesCollection;

import javax.imageio.ImageIO;
import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.Paint;
import java.awt.RenderingHints;
import java.awt.geom.Ellipse2D;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.text.DecimalFormat;
import java.text.DecimalFormatSymbols;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/** The EDA report's charts, drawn with JFreeChart and written as PNG. */
public final class Charts {
    private Charts() {}

    static final Color BLUE = new Color(0x4C72B0), ORANGE = new Color(0xDD8452), GRID = new Color(0xDDDDDD);
    private static final Font LABEL_FONT = new Font(Font.SANS_SERIF, Font.PLAIN, 11);

    /** One histogram bin: values {@code from..to} (inclusive, integers) and how many fell in it. */
    public record Bin(int from, int to, int count) {
        public String label() { return from == to ? Integer.toString(from) : from + "-" + to; }
    }

    /**
     * Bins a histogram of integer values ({@code counts[k]}: how often k occurred): one bin per value from the
     * smallest to the largest value present when they span at most {@code maxBins} values, else equal bins
     * of {@code ceil(span / maxBins)} values. Empty when no value occurred.
     */
    public static List<Bin> bins(int[] counts, int maxBins) {
        int lo = 0, hi = counts.length - 1;
        while (lo <= hi && counts[lo] == 0) lo++;
        while (hi >= lo && counts[hi] == 0) hi--;
        if (lo > hi) return List.of();
        int span = hi - lo + 1, width = (span + maxBins - 1) / maxBins;
        List<Bin> bins = new java.util.ArrayList<>();
        for (int from = lo; from <= hi; from += width) {
            int to = Math.min(hi, from + width - 1), n = 0;
            for (int k = from; k <= to; k++) n += counts[k];
            bins.add(new Bin(from, to, n));
        }
        return bins;
    }

    /** The seed notebook's count plot: per subtype a bar for the images labelled 0 and one for those labelled 1. */
    public static JFreeChart labelCounts(LabelStats s) {
        DefaultCategoryDataset ds = new DefaultCategoryDataset();
        for (Subtype t : Subtype.values()) {
            ds.addValue(s.negatives(t), "label 0", t.csvName());
            ds.addValue(s.positives(t), "label 1", t.csvName());
        }
        JFreeChart chart = ChartFactory.createBarChart("Images per subtype and label", "subtype", "images", ds,
                PlotOrientation.VERTICAL, true, false, false);
        styleBars(chart, "{2}", BLUE, ORANGE);
        return chart;
    }

    /** Positive rate (share of images labelled 1) per subtype, in percent. */
    public static JFreeChart positiveRates(LabelStats s) {
        DefaultCategoryDataset ds = new DefaultCategoryDataset();
        for (Subtype t : Subtype.values()) ds.addValue(100.0 * s.rate(t), "positive rate", t.csvName());
        JFreeChart chart = ChartFactory.createBarChart("Positive rate per subtype", "subtype", "images labelled 1 (%)", ds,
                PlotOrientation.VERTICAL, false, false, false);
        styleBars(chart, "{2}%", ORANGE);
        return chart;
    }

    /** Subtypes per positive image: bars for 1 to 5 subtypes. */
    public static JFreeChart subtypesPerPositive(LabelStats s) {
        DefaultCategoryDataset ds = new DefaultCategoryDataset();
        for (int k = 1; k < s.subtypesPerPositive().length; k++) ds.addValue(s.subtypesPerPositive()[k], "images", Integer.toString(k));
        JFreeChart chart = ChartFactory.createBarChart("Subtypes per positive image", "subtypes labelled 1", "positive images", ds,
                PlotOrientation.VERTICAL, false, false, false);
        styleBars(chart, "{2}", ORANGE);
        return chart;
    }

    /** Heatmap of the co-occurrence matrix of the five hemorrhage subtypes, each cell with its count. */
    public static JFreeChart cooccurrence(LabelStats s) {
        List<Subtype> names = LabelStats.HEMORRHAGES;
        int n = names.size();
        double[] xs = new double[n * n], ys = new double[n * n], zs = new double[n * n];
        double max = 1;
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < n; j++) {
                xs[i * n + j] = j;
                ys[i * n + j] = i;
                zs[i * n + j] = s.cooccurrence()[i][j];
                max = Math.max(max, zs[i * n + j]);
            }
        }
        DefaultXYZDataset ds = new DefaultXYZDataset();
        ds.addSeries("images", new double[][]{xs, ys, zs});
        String[] labels = names.stream().map(Subtype::csvName).toArray(String[]::new);
        SymbolAxis x = new SymbolAxis(null, labels), y = new SymbolAxis(null, labels);
        x.setGridBandsVisible(false);
        y.setGridBandsVisible(false);
        y.setInverted(true); // first subtype at the top, as a matrix is read
        x.setTickLabelFont(LABEL_FONT);
        y.setTickLabelFont(LABEL_FONT);
        XYBlockRenderer r = new XYBlockRenderer();
        Blues scale = new Blues(max);
        r.setPaintScale(scale);
        XYPlot plot = new XYPlot(ds, x, y, r);
        plot.setBackgroundPaint(Color.WHITE);
        plot.setDomainGridlinesVisible(false);
        plot.setRangeGridlinesVisible(false);
        for (int k = 0; k < xs.length; k++) {
            XYTextAnnotation a = new XYTextAnnotation(Long.toString((long) zs[k]), xs[k], ys[k]);
            a.setFont(new Font(Font.SANS_SERIF, Font.BOLD, 13));
            a.setPaint(zs[k] > max / 2 ? Color.WHITE : Color.BLACK);
            a.setTextAnchor(TextAnchor.CENTER);
            plot.addAnnotation(a);
        }
        JFreeChart chart = new JFreeChart("Co-occurrence of the subtypes (images positive for both)", JFreeChart.DEFAULT_TITLE_FONT, plot, false);
        NumberAxis legendAxis = new NumberAxis("images");
        legendAxis.setRange(0, max);
        legendAxis.setStandardTickUnits(NumberAxis.createIntegerTickUnits());
        PaintScaleLegend legend = new PaintScaleLegend(scale, legendAxis);
        legend.setPosition(RectangleEdge.RIGHT);
        legend.setStripWidth(14);
        legend.setMargin(10, 10, 10, 10);
        chart.addSubtitle(legend);
        return finish(chart);
    }

    /** A histogram of integer values from precomputed bins (e.g. slices per study). */
    public static JFreeChart histogram(String title, String xLabel, String yLabel, List<Bin> bins) {
        XYIntervalSeries series = new XYIntervalSeries(yLabel);
        for (Bin b : bins) series.add((b.from() + b.to()) / 2.0, b.from() - 0.5, b.to() + 0.5, b.count(), 0, b.count());
        XYIntervalSeriesCollection ds = new XYIntervalSeriesCollection();
        ds.addSeries(series);
        JFreeChart chart = ChartFactory.createXYBarChart(title, xLabel, false, yLabel, ds, PlotOrientation.VERTICAL, false, false, false);
        XYPlot plot = chart.getXYPlot();
        XYBarRenderer r = (XYBarRenderer) plot.getRenderer();
        r.setBarPainter(new StandardXYBarPainter());
        r.setShadowVisible(false);
        r.setSeriesPaint(0, BLUE);
        r.setDrawBarOutline(true);
        r.setSeriesOutlinePaint(0, Color.WHITE);
        ((NumberAxis) plot.getDomainAxis()).setStandardTickUnits(NumberAxis.createIntegerTickUnits());
        ((NumberAxis) plot.getRangeAxis()).setStandardTickUnits(NumberAxis.createIntegerTickUnits());
        styleXY(plot);
        return finish(chart);
    }

    /**
     * Window Center against Window Width: one point per distinct pair, its colour the number of files with it
     * (log scale), so that a million files draw as a few dozen points.
     */
    public static JFreeChart windows(Map<DicomCensus.WindowPair, Integer> pairs) {
        int n = pairs.size();
        double[] xs = new double[n], ys = new double[n], zs = new double[n];
        int i = 0;
        double maxLog = 1;
        for (Map.Entry<DicomCensus.WindowPair, Integer> e : pairs.entrySet()) {
            xs[i] = e.getKey().center();
            ys[i] = e.getKey().width();
            zs[i] = Math.log10(e.getValue());
            maxLog = Math.max(maxLog, zs[i]);
            i++;
        }
        DefaultXYZDataset ds = new DefaultXYZDataset();
        ds.addSeries("files", new double[][]{xs, ys, zs});
        NumberAxis x = new NumberAxis("Window Center (HU)"), y = new NumberAxis("Window Width (HU)");
        x.setAutoRangeIncludesZero(false);
        y.setAutoRangeIncludesZero(false);
        XYShapeRenderer r = new XYShapeRenderer();
        Blues scale = new Blues(maxLog, 0.25);
        r.setPaintScale(scale);
        r.setSeriesShape(0, new Ellipse2D.Double(-5, -5, 10, 10));
        r.setDrawOutlines(true);
        r.setDefaultOutlinePaint(Color.DARK_GRAY);
        r.setUseOutlinePaint(true);
        XYPlot plot = new XYPlot(ds, x, y, r);
        styleXY(plot);
        JFreeChart chart = new JFreeChart("Header window (first values), one point per distinct pair",
                JFreeChart.DEFAULT_TITLE_FONT, plot, false);
        NumberAxis legendAxis = new NumberAxis("log10(files)");
        legendAxis.setRange(0, maxLog);
        PaintScaleLegend legend = new PaintScaleLegend(scale, legendAxis);
        legend.setPosition(RectangleEdge.RIGHT);
        legend.setStripWidth(14);
        legend.setMargin(10, 10, 10, 10);
        chart.addSubtitle(legend);
        return finish(chart);
    }

    /** Renders the chart at {@code width x height} and writes it as an RGB PNG with ImageIO. */
    public static void writePng(JFreeChart chart, Path file, int width, int height) throws IOException {
        BufferedImage image = chart.createBufferedImage(width, height, BufferedImage.TYPE_INT_RGB, null);
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        try {
            if (!ImageIO.write(image, "png", tmp.toFile())) throw new IOException("no PNG writer in this JDK");
            Files.move(tmp, file, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    private static void styleBars(JFreeChart chart, String labelFormat, Paint... paints) {
        CategoryPlot plot = chart.getCategoryPlot();
        plot.setBackgroundPaint(Color.WHITE);
        plot.setRangeGridlinePaint(GRID);
        plot.setRangeGridlineStroke(new BasicStroke(1f));
        plot.setOutlineVisible(false);
        BarRenderer r = (BarRenderer) plot.getRenderer();
        r.setBarPainter(new StandardBarPainter());
        r.setShadowVisible(false);
        r.setItemMargin(0.05);
        for (int i = 0; i < paints.length; i++) r.setSeriesPaint(i, paints[i]);
        DecimalFormat format = labelFormat.endsWith("%") ? new DecimalFormat("0.00", DecimalFormatSymbols.getInstance(Locale.ROOT))
                : new DecimalFormat("#,##0", DecimalFormatSymbols.getInstance(Locale.ROOT));
        r.setDefaultItemLabelGenerator(new StandardCategoryItemLabelGenerator(labelFormat, format));
        r.setDefaultItemLabelsVisible(true);
        r.setDefaultItemLabelFont(LABEL_FONT);
        r.setDefaultPositiveItemLabelPosition(new ItemLabelPosition(ItemLabelAnchor.OUTSIDE12, TextAnchor.BOTTOM_CENTER));
        NumberAxis y = (NumberAxis) plot.getRangeAxis();
        y.setUpperMargin(0.12); // room for the labels above the highest bar
        if (!labelFormat.endsWith("%")) y.setStandardTickUnits(NumberAxis.createIntegerTickUnits());
        CategoryAxis x = plot.getDomainAxis();
        x.setTickLabelFont(LABEL_FONT);
        x.setMaximumCategoryLabelWidthRatio(1.5f); // "intraparenchymal" in full
        x.setCategoryLabelPositions(CategoryLabelPositions.STANDARD);
        finish(chart);
    }

    private static void styleXY(XYPlot plot) {
        plot.setBackgroundPaint(Color.WHITE);
        plot.setDomainGridlinePaint(GRID);
        plot.setRangeGridlinePaint(GRID);
        plot.setOutlineVisible(false);
    }

    private static JFreeChart finish(JFreeChart chart) {
        chart.setBackgroundPaint(Color.WHITE);
        chart.setAntiAlias(true);
        chart.setTextAntiAlias(RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
        return chart;
    }

    /** White to dark blue over [0, upper]; {@code floor} lifts the lowest values off white so that points stay visible. */
    static final class Blues implements PaintScale {
        private static final Color LOW = new Color(0xF7FBFF), HIGH = new Color(0x08306B);
        private final double upper, floor;

        Blues(double upper) { this(upper, 0); }

        Blues(double upper, double floor) {
            this.upper = upper > 0 ? upper : 1;
            this.floor = floor;
        }

        @Override
        public double getLowerBound() { return 0; }

        @Override
        public double getUpperBound() { return upper; }

        @Override
        public Paint getPaint(double value) {
            double t = Double.isNaN(value) ? 0 : Math.clamp(value / upper, 0, 1);
            t = floor + (1 - floor) * t;
            return new Color(mix(LOW.getRed(), HIGH.getRed(), t), mix(LOW.getGreen(), HIGH.getGreen(), t), mix(LOW.getBlue(), HIGH.getBlue(), t));
        }

        private static int mix(int a, int b, double t) { return (int) Math.round(a + (b - a) * t); }
    }
}
