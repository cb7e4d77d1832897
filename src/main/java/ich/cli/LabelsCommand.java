package ich.cli;

import ich.labels.LabelCsv;
import ich.labels.LabelFormatException;
import ich.labels.LabelTable;
import ich.labels.Subtype;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;

@Command(name = "labels", mixinStandardHelpOptions = true, description = "Read the RSNA label files.",
        subcommands = {LabelsCommand.Summary.class})
final class LabelsCommand implements Runnable {
    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public void run() { spec.commandLine().usage(spec.commandLine().getOut()); }

    @Command(name = "summary", mixinStandardHelpOptions = true,
            description = {"Per subtype the images labelled 0 and 1, then images, positives (any = 1) and duplicate rows.",
                    "Reads a training label CSV (ID,Label). Each image counts once: identical duplicate rows are merged "
                            + "first, so the counts are of images, not of rows as pandas' value_counts on the raw file gives."})
    static final class Summary implements Callable<Integer> {
        @picocli.CommandLine.Spec
        picocli.CommandLine.Model.CommandSpec spec;

        @Parameters(index = "0", paramLabel = "CSV", description = "e.g. stage_2_train.csv")
        Path csv;

        @Override
        public Integer call() {
            PrintWriter out = spec.commandLine().getOut(), err = spec.commandLine().getErr();
            if (!Files.isRegularFile(csv)) {
                err.println("ich labels summary: " + csv + " is not a file");
                err.flush();
                return 2;
            }
            LabelTable table;
            try {
                table = LabelCsv.read(csv);
            } catch (LabelFormatException e) {
                err.println("ich labels summary: " + e.getMessage());
                err.flush();
                return 1;
            } catch (IOException e) {
                err.println("ich labels summary: cannot read " + csv + ": " + e);
                err.flush();
                return 2;
            }
            out.print(text(table));
            out.flush();
            return 0;
        }

        /** One line per subtype, {@code name 0-count 1-count}, then images, positives, duplicates. */
        static String text(LabelTable table) {
            StringBuilder sb = new StringBuilder();
            for (Subtype s : Subtype.values()) {
                sb.append(s.csvName()).append(' ').append(table.negatives(s)).append(' ').append(table.positives(s)).append('\n');
            }
            sb.append("images ").append(table.images()).append('\n');
            sb.append("positives ").append(table.positiveImages()).append('\n');
            sb.append("duplicates ").append(table.duplicatesMerged()).append('\n');
            return sb.toString();
        }
    }
}
