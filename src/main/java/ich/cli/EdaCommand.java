package ich.cli;

import ich.eda.DicomCensus;
import ich.eda.EdaReport;
import ich.eda.HeaderScan;
import ich.eda.LabelStats;
import ich.labels.LabelCsv;
import ich.labels.LabelFormatException;
import ich.labels.LabelTable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;

@Command(name = "eda", mixinStandardHelpOptions = true,
        description = {"Exploratory data analysis: writes report.md with PNG charts beside it into --out.",
                "From the labels: images per subtype and label, positive rates, the co-occurrence of the subtypes, "
                        + "subtypes per positive image. Counts are of images (identical duplicate rows merged).",
                "With --dicom, also reads the header of every file under DIR (recursively, on all cores, no pixel decoding): "
                        + "files matched to label rows by image id (file name without .dcm), slices per study, pixel encodings, "
                        + "the RSNA 12-bit fix and the header windows. Unmatched files, labels without files and unreadable "
                        + "files are counted and listed."})
final class EdaCommand implements Callable<Integer> {
    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = "--labels", required = true, paramLabel = "CSV", description = "Training labels (ID,Label), e.g. stage_2_train.csv.")
    Path labels;

    @Option(names = "--dicom", paramLabel = "DIR", description = "Folder of DICOM files to census.")
    Path dicom;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Where report.md and the charts go (created).")
    Path out;

    @Option(names = "--threads", paramLabel = "N", description = "Threads for the header scan (default: all cores).")
    int threads = Runtime.getRuntime().availableProcessors();

    @Override
    public Integer call() throws InterruptedException {
        Headless.ensure();
        PrintWriter stdout = spec.commandLine().getOut(), err = spec.commandLine().getErr();
        if (!Files.isRegularFile(labels)) return fail(err, 2, labels + " is not a file");
        if (dicom != null && !Files.isDirectory(dicom)) return fail(err, 2, dicom + " is not a folder");
        LabelTable table;
        try {
            table = LabelCsv.read(labels);
        } catch (LabelFormatException e) {
            return fail(err, 1, e.getMessage());
        } catch (IOException e) {
            return fail(err, 2, "cannot read " + labels + ": " + e);
        }
        LabelStats stats = LabelStats.of(table);
        DicomCensus census = null;
        int workers = Math.max(1, threads);
        if (dicom != null) {
            try {
                census = DicomCensus.of(HeaderScan.scan(dicom, workers), table);
            } catch (IOException e) {
                return fail(err, 2, "cannot list " + dicom + ": " + e);
            }
        }
        List<Path> written;
        try {
            written = EdaReport.write(out, labels.getFileName().toString(), stats, census, dicom == null ? null : dicom.toString(), workers);
        } catch (IOException e) {
            return fail(err, 1, "cannot write the report into " + out + ": " + e);
        }
        stdout.printf("report     %s%n", written.getFirst());
        stdout.printf("images     %d (%d positive)%n", stats.images(), stats.positiveImages());
        if (census != null) {
            stdout.printf("files      %d (%d unreadable, %d without a label row; %d labelled images without a file)%n",
                    census.scan().files().size(), census.scan().unreadable().size(), census.filesWithoutLabel().size(),
                    census.labelsWithoutFile().size());
        }
        for (Path p : written.subList(1, written.size())) stdout.printf("wrote      %s%n", p);
        stdout.flush();
        return 0;
    }

    private static int fail(PrintWriter err, int code, String message) {
        err.println("ich eda: " + message);
        err.flush();
        return code;
    }
}
