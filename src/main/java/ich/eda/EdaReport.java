package ich.eda;

import ich.labels.Subtype;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Writes {@code report.md} and its PNG charts into a folder. The text states the numbers behind every chart
 * (images, positives, rates), so the report reads without the images. Lists of files longer than
 * {@link #LISTED} entries are cut in the report and written whole to a text file beside it.
 */
public final class EdaReport {
    /** Entries of a list shown in report.md; the complete list goes to a file beside it. */
    public static final int LISTED = 50;
    /** Distinct window pairs tabulated, most frequent first. */
    static final int WINDOW_ROWS = 20;

    public static final String REPORT = "report.md";
    public static final String LABEL_COUNTS = "label_counts.png";
    public static final String POSITIVE_RATES = "positive_rates.png";
    public static final String COOCCURRENCE = "cooccurrence.png";
    public static final String SUBTYPES_PER_POSITIVE = "subtypes_per_positive_image.png";
    public static final String SLICES_PER_STUDY = "slices_per_study.png";
    public static final String WINDOWS = "window_center_width.png";
    public static final String UNREADABLE = "unreadable_files.tsv";
    public static final String FILES_WITHOUT_LABELS = "files_without_labels.txt";
    public static final String LABELS_WITHOUT_FILES = "labels_without_files.txt";
    public static final String IDS_IN_SEVERAL_FILES = "image_ids_in_several_files.txt";

    private final Path out;
    private final List<Path> written = new ArrayList<>();
    private final StringBuilder md = new StringBuilder();

    private EdaReport(Path out) { this.out = out; }

    /**
     * Writes the report.
     *
     * @param labelsName how to name the label file in the report
     * @param census     the DICOM header census, or null without {@code --dicom}
     * @param dicomName  how to name the DICOM folder in the report
     * @param threads    threads the header scan ran on, for the report
     * @return the files written, report.md first
     */
    public static List<Path> write(Path out, String labelsName, LabelStats labels, DicomCensus census, String dicomName,
                                   int threads) throws IOException {
        Files.createDirectories(out);
        EdaReport r = new EdaReport(out);
        r.labels(labelsName, labels);
        if (census != null) r.dicom(census, dicomName, threads);
        Path report = out.resolve(REPORT);
        Path tmp = out.resolve(REPORT + ".tmp");
        Files.writeString(tmp, r.md, StandardCharsets.UTF_8);
        Files.move(tmp, report, StandardCopyOption.REPLACE_EXISTING);
        r.written.addFirst(report);
        return List.copyOf(r.written);
    }

    // ---------------------------------------------------------------------------------------------- labels

    private void labels(String labelsName, LabelStats s) throws IOException {
        md.append("# Exploratory data analysis\n\n");
        md.append("Labels from `").append(labelsName).append("`: ").append(n(s.images(), "image")).append(" (")
                .append(n(s.lines(), "data line")).append("; ").append(n(s.duplicatesMerged(), "identical duplicate row"))
                .append(" merged, so every count below is of images, not of rows). Positive (any = 1): ")
                .append(n(s.positiveImages(), "image")).append(", ").append(pct(s.positiveImages(), s.images()))
                .append("; negative: ").append(s.images() - s.positiveImages()).append(".\n\n");

        md.append("## Labels per subtype\n\n");
        chart(Charts.labelCounts(s), LABEL_COUNTS, 900, 500, "Images per subtype and label");
        md.append("Per subtype, the images labelled 0 and 1 (the count plot of the pivoted labels).\n\n");
        md.append("| subtype | label 0 | label 1 | positive rate |\n|---|---:|---:|---:|\n");
        for (Subtype t : Subtype.values()) {
            md.append("| ").append(t.csvName()).append(" | ").append(s.negatives(t)).append(" | ").append(s.positives(t))
                    .append(" | ").append(pct(s.positives(t), s.images())).append(" |\n");
        }
        md.append('\n');

        md.append("## Positive rate per subtype\n\n");
        chart(Charts.positiveRates(s), POSITIVE_RATES, 900, 500, "Positive rate per subtype");
        md.append("Rates: ");
        for (Subtype t : Subtype.values()) {
            md.append(t.csvName()).append(' ').append(pct(s.positives(t), s.images()))
                    .append(t.ordinal() < Subtype.COUNT - 1 ? ", " : ".");
        }
        int most = LabelStats.HEMORRHAGES.stream().mapToInt(s::positives).max().orElseThrow();
        int least = LabelStats.HEMORRHAGES.stream().mapToInt(s::positives).min().orElseThrow();
        if (most == least) {
            md.append(" All five subtypes have ").append(n(most, "positive image")).append(".\n\n");
        } else {
            md.append(" Of the five subtypes the most frequent is ").append(withCount(s, most)).append(" and the rarest ")
                    .append(withCount(s, least)).append(".\n\n");
        }

        md.append("## Co-occurrence of the subtypes\n\n");
        chart(Charts.cooccurrence(s), COOCCURRENCE, 800, 650, "Co-occurrence of the subtypes");
        md.append("Row i, column j: images positive for both subtypes; the diagonal holds the images positive for that subtype.\n\n");
        md.append("| |");
        for (Subtype t : LabelStats.HEMORRHAGES) md.append(' ').append(t.csvName()).append(" |");
        md.append("\n|---|");
        md.append("---:|".repeat(LabelStats.HEMORRHAGES.size())).append('\n');
        int n = LabelStats.HEMORRHAGES.size();
        int bestA = -1, bestB = -1, best = 0;
        for (int a = 0; a < n; a++) {
            md.append("| ").append(LabelStats.HEMORRHAGES.get(a).csvName()).append(" |");
            for (int b = 0; b < n; b++) {
                int c = s.cooccurrence()[a][b];
                md.append(' ').append(c).append(" |");
                if (b > a && c > best) {
                    best = c;
                    bestA = a;
                    bestB = b;
                }
            }
            md.append('\n');
        }
        md.append('\n');
        int multi = 0;
        for (int k = 2; k < s.subtypesPerPositive().length; k++) multi += s.subtypesPerPositive()[k];
        if (best == 0) {
            md.append("No image is positive for two subtypes.\n\n");
        } else {
            md.append("The most frequent pair is ").append(LabelStats.HEMORRHAGES.get(bestA).csvName()).append(" with ")
                    .append(LabelStats.HEMORRHAGES.get(bestB).csvName()).append(": ").append(n(best, "image")).append(". ")
                    .append(n(multi, "positive image")).append(" (").append(pct(multi, s.positiveImages()))
                    .append(" of the positives) have two or more subtypes.\n\n");
        }

        md.append("## Subtypes per positive image\n\n");
        chart(Charts.subtypesPerPositive(s), SUBTYPES_PER_POSITIVE, 700, 450, "Subtypes per positive image");
        md.append("| subtypes | positive images | share of positives |\n|---:|---:|---:|\n");
        for (int k = 1; k < s.subtypesPerPositive().length; k++) {
            md.append("| ").append(k).append(" | ").append(s.subtypesPerPositive()[k]).append(" | ")
                    .append(pct(s.subtypesPerPositive()[k], s.positiveImages())).append(" |\n");
        }
        md.append('\n');
        md.append("Of ").append(n(s.positiveImages(), "positive image")).append(", ").append(s.subtypesPerPositive()[1])
                .append(" (").append(pct(s.subtypesPerPositive()[1], s.positiveImages())).append(") have one subtype and ")
                .append(multi).append(" (").append(pct(multi, s.positiveImages())).append(") more than one. ");
        if (s.subtypesPerPositive()[0] == 0 && s.subtypeWithoutAny() == 0) {
            md.append("The labels are consistent: every positive image has a subtype and every image with a subtype has any = 1.\n\n");
        } else {
            md.append("Inconsistent labels: ").append(n(s.subtypesPerPositive()[0], "image")).append(" with any = 1 but no subtype, ")
                    .append(n(s.subtypeWithoutAny(), "image")).append(" with a subtype but any = 0.\n\n");
        }
    }

    // ----------------------------------------------------------------------------------------------- DICOM

    private void dicom(DicomCensus c, String dicomName, int threads) throws IOException {
        HeaderScan.Result scan = c.scan();
        int files = scan.files().size();
        md.append("## DICOM headers\n\n");
        md.append("Files under `").append(dicomName).append("`: ").append(files).append(". Headers read: ")
                .append(scan.read().size()).append("; unreadable: ").append(scan.unreadable().size())
                .append("; read but without Pixel Data: ").append(c.withoutPixelData().size()).append("; images (frames of files with Pixel Data): ")
                .append(c.images()).append(". Only headers were read, no pixels decoded, on ").append(threads)
                .append(threads == 1 ? " thread" : " threads").append(". A multi-frame file holds one image per frame, named `<file>_frame<k>` ")
                .append("(k from 1) as `ich train` and `ich score` name them, each counted with the header values of frame 1.\n\n");
        md.append("Matched to the labels by image id (the file name without `.dcm`): files with a label row ").append(c.filesWithLabel())
                .append(", without ").append(c.filesWithoutLabel().size()).append("; labelled images with a file ")
                .append(c.matchedImages()).append(" of ").append(c.matchedImages() + c.labelsWithoutFile().size())
                .append(", without ").append(c.labelsWithoutFile().size()).append(". Positive (any = 1) among the matched images: ")
                .append(c.matchedPositiveImages()).append(", ").append(pct(c.matchedPositiveImages(), c.matchedImages())).append(".\n\n");

        slices(c);
        encodings(c);
        windows(c);

        md.append("### Unreadable files\n\n");
        if (scan.unreadable().isEmpty()) {
            md.append("None.\n\n");
        } else {
            md.append(n(scan.unreadable().size(), "file")).append(" the reader refused, with its error:\n\n| file | error |\n|---|---|\n");
            for (HeaderScan.Unreadable u : scan.unreadable().subList(0, Math.min(LISTED, scan.unreadable().size()))) {
                md.append("| `").append(relative(scan.root(), u.file())).append("` | ").append(cell(u.error())).append(" |\n");
            }
            md.append('\n');
            StringBuilder tsv = new StringBuilder("file\terror\n");
            for (HeaderScan.Unreadable u : scan.unreadable()) {
                tsv.append(relative(scan.root(), u.file())).append('\t').append(u.error().replace('\t', ' ').replace('\n', ' ')).append('\n');
            }
            list(UNREADABLE, tsv, scan.unreadable().size());
        }

        md.append("### Files without a label row\n\n");
        listed(c.filesWithoutLabel().stream().map(p -> relative(scan.root(), p)).toList(), FILES_WITHOUT_LABELS);
        md.append("### Labelled images without a file\n\n");
        listed(c.labelsWithoutFile(), LABELS_WITHOUT_FILES);
        if (!c.imageIdsInSeveralFiles().isEmpty()) {
            md.append("### Image ids in more than one file\n\n");
            md.append("Each of these ids names several files; all of them count as matched.\n\n");
            List<String> lines = new ArrayList<>();
            c.imageIdsInSeveralFiles().forEach((id, paths) -> lines.add(id + ": "
                    + String.join(", ", paths.stream().map(p -> relative(scan.root(), p)).toList())));
            listed(lines, IDS_IN_SEVERAL_FILES);
        }
    }

    private void slices(DicomCensus c) throws IOException {
        md.append("### Slices per study\n\n");
        int[] hist = c.studySizeHistogram();
        int studies = c.slicesPerStudy().size();
        if (studies == 0) {
            md.append(c.images() == 0 ? "No images (files with Pixel Data).\n\n" : "No image has a Study Instance UID.\n\n");
            return;
        }
        List<Charts.Bin> bins = Charts.bins(hist, 60);
        chart(Charts.histogram("Slices per study", "slices (images) in the study", "studies", bins), SLICES_PER_STUDY, 900, 500,
                "Slices per study");
        int min = 0, max = hist.length - 1;
        while (hist[min] == 0) min++;
        long total = 0;
        for (int k = 0; k < hist.length; k++) total += (long) k * hist[k];
        md.append(n(total, "image")).append(" in ").append(n(studies, "study", "studies")).append(" (Study Instance UID): ").append(min).append(" to ")
                .append(max).append(" slices per study, median ").append(num(median(hist, studies))).append(", mean ")
                .append(String.format(Locale.ROOT, "%.2f", (double) total / studies)).append(". Images without a Study Instance UID: ")
                .append(c.withoutStudyUid()).append(".\n\n");
        md.append("| slices | studies |\n|---:|---:|\n");
        for (Charts.Bin b : bins) if (b.count() > 0) md.append("| ").append(b.label()).append(" | ").append(b.count()).append(" |\n");
        md.append('\n');
    }

    private void encodings(DicomCensus c) {
        md.append("### Pixel encodings\n\n");
        md.append("Images per (0028,0101) Bits Stored, (0028,0103) Pixel Representation (0 unsigned, 1 signed) and (0028,1052) Rescale Intercept, ")
                .append("and how many of them need the RSNA 12-bit fix.\n\n");
        md.append("| Bits Stored | Pixel Representation | Rescale Intercept | images | RSNA 12-bit fix |\n|---:|---:|---:|---:|---:|\n");
        for (Map.Entry<DicomCensus.Encoding, DicomCensus.EncodingCount> e : c.encodings().entrySet()) {
            DicomCensus.Encoding k = e.getKey();
            md.append("| ").append(k.bitsStored()).append(" | ").append(k.pixelRepresentation()).append(" | ")
                    .append(Double.isNaN(k.rescaleIntercept()) ? "absent" : num(k.rescaleIntercept())).append(" | ")
                    .append(e.getValue().images()).append(" | ").append(e.getValue().rsna12BitFix()).append(" |\n");
        }
        md.append('\n');
        md.append("### RSNA 12-bit fix\n\n");
        md.append(c.rsna12BitFix()).append(" of ").append(n(c.images(), "image")).append(" (").append(pct(c.rsna12BitFix(), c.images()))
                .append(") need the RSNA 12-bit fix: Bits Stored 12, Pixel Representation 0 and a Rescale Intercept above -100 ")
                .append("(absent counts as 0), without a Modality LUT. Their scanners stored HU modulo 4096, so the Hounsfield ")
                .append("conversion reads them as (stored + 1000) mod 4096 with intercept -1000.\n\n");
    }

    private void windows(DicomCensus c) throws IOException {
        md.append("### Window Center/Width\n\n");
        int withWindow = c.images() - c.withoutWindow();
        if (c.windows().isEmpty()) {
            md.append("No image has a header window ((0028,1050) Window Center and (0028,1051) Window Width): no chart.\n\n");
            return;
        }
        chart(Charts.windows(c.windows()), WINDOWS, 900, 600, "Window Center against Width");
        md.append("Images with a header window ((0028,1050) Window Center and (0028,1051) Window Width, first values): ")
                .append(withWindow).append("; without: ").append(c.withoutWindow()).append(". ");
        double cMin = Double.MAX_VALUE, cMax = -Double.MAX_VALUE, wMin = Double.MAX_VALUE, wMax = -Double.MAX_VALUE;
        for (DicomCensus.WindowPair p : c.windows().keySet()) {
            cMin = Math.min(cMin, p.center());
            cMax = Math.max(cMax, p.center());
            wMin = Math.min(wMin, p.width());
            wMax = Math.max(wMax, p.width());
        }
        List<Map.Entry<DicomCensus.WindowPair, Integer>> byCount = new ArrayList<>(c.windows().entrySet());
        byCount.sort(Map.Entry.<DicomCensus.WindowPair, Integer>comparingByValue().reversed().thenComparing(Map.Entry.comparingByKey()));
        Map.Entry<DicomCensus.WindowPair, Integer> top = byCount.getFirst();
        md.append(c.windows().size()).append(" distinct pairs; Window Center from ").append(num(cMin)).append(" to ").append(num(cMax))
                .append(", Window Width from ").append(num(wMin)).append(" to ").append(num(wMax)).append(". The most common is ")
                .append(num(top.getKey().center())).append('/').append(num(top.getKey().width())).append(" (").append(n(top.getValue(), "image"))
                .append(", ").append(pct(top.getValue(), withWindow)).append(").\n\n");
        md.append("| Window Center | Window Width | images |\n|---:|---:|---:|\n");
        for (Map.Entry<DicomCensus.WindowPair, Integer> e : byCount.subList(0, Math.min(WINDOW_ROWS, byCount.size()))) {
            md.append("| ").append(num(e.getKey().center())).append(" | ").append(num(e.getKey().width())).append(" | ")
                    .append(e.getValue()).append(" |\n");
        }
        if (byCount.size() > WINDOW_ROWS) md.append("\nThe ").append(WINDOW_ROWS).append(" most common of ").append(byCount.size()).append(" pairs.\n");
        md.append('\n');
    }

    // --------------------------------------------------------------------------------------------- helpers

    private void chart(org.jfree.chart.JFreeChart chart, String name, int width, int height, String alt) throws IOException {
        Path file = out.resolve(name);
        Charts.writePng(chart, file, width, height);
        written.add(file);
        md.append("![").append(alt).append("](").append(name).append(")\n\n");
    }

    /** A list in the report, cut at {@link #LISTED} entries; then written whole to {@code fileName}. */
    private void listed(Collection<String> entries, String fileName) throws IOException {
        if (entries.isEmpty()) {
            md.append("None.\n\n");
            return;
        }
        md.append(entries.size()).append(entries.size() == 1 ? " entry" : " entries").append(":\n\n");
        int shown = 0;
        for (String e : entries) {
            if (shown++ == LISTED) break;
            md.append("- `").append(e).append("`\n");
        }
        md.append('\n');
        StringBuilder text = new StringBuilder();
        for (String e : entries) text.append(e).append('\n');
        list(fileName, text, entries.size());
    }

    /** Writes a complete list beside the report and, when the report shows only part of it, says where it is. */
    private void list(String fileName, CharSequence text, int entries) throws IOException {
        Path file = out.resolve(fileName);
        Files.writeString(file, text, StandardCharsets.UTF_8);
        written.add(file);
        if (entries > LISTED) {
            md.append("The first ").append(LISTED).append(" of ").append(entries).append("; all of them are in [")
                    .append(fileName).append("](").append(fileName).append(").\n\n");
        } else {
            md.append("Also in [").append(fileName).append("](").append(fileName).append(").\n\n");
        }
    }

    private static String relative(Path root, Path file) {
        try {
            return root.relativize(file).toString();
        } catch (IllegalArgumentException e) {
            return file.toString();
        }
    }

    /** A value for a markdown table cell: pipes escaped, one line. */
    private static String cell(String s) { return s.replace("|", "\\|").replace('\n', ' ').replace('\r', ' '); }

    /** The median of the values a histogram counts ({@code n} values in all). */
    static double median(int[] hist, int n) {
        int lower = -1, upper = -1;
        long seen = 0;
        for (int k = 0; k < hist.length && upper < 0; k++) {
            seen += hist[k];
            if (lower < 0 && seen >= (n + 1) / 2) lower = k;
            if (seen >= n / 2 + 1) upper = k;
        }
        return n % 2 == 1 ? lower : (lower + upper) / 2.0;
    }

    /** "1 image", "2 images". */
    static String n(long count, String noun) { return n(count, noun, noun + "s"); }

    static String n(long count, String singular, String plural) { return count + " " + (count == 1 ? singular : plural); }

    /** The hemorrhage subtypes with this many positives, e.g. "subdural (3 images)" or "epidural and subarachnoid (0 images each)". */
    private static String withCount(LabelStats s, int positives) {
        List<String> names = LabelStats.HEMORRHAGES.stream().filter(t -> s.positives(t) == positives).map(Subtype::csvName).toList();
        String joined = names.size() == 1 ? names.getFirst()
                : String.join(", ", names.subList(0, names.size() - 1)) + " and " + names.getLast();
        return joined + " (" + n(positives, "image") + (names.size() > 1 ? " each" : "") + ")";
    }

    /** "12.50%"; "0.00%" of nothing. */
    static String pct(long part, long whole) {
        return String.format(Locale.ROOT, "%.2f%%", whole == 0 ? 0.0 : 100.0 * part / whole);
    }

    /** A number as written in a header: integers without a decimal point. */
    static String num(double v) {
        if (v == Math.rint(v) && Math.abs(v) < 1e15) return Long.toString((long) v);
        return java.math.BigDecimal.valueOf(v).stripTrailingZeros().toPlainString();
    }
}
