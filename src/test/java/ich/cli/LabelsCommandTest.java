package ich.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/** {@code ich labels ...} as a user runs it. */
class LabelsCommandTest {
    private static CliTest.Run run(String... args) { return CliTest.run(args); }

    @Test
    void summaryCountsZerosAndOnesPerSubtype(@TempDir Path dir) throws Exception {
        Path csv = dir.resolve("train.csv");
        Files.writeString(csv, """
                ID,Label
                ID_a_epidural,0
                ID_a_intraparenchymal,1
                ID_a_intraventricular,0
                ID_a_subarachnoid,0
                ID_a_subdural,1
                ID_a_any,1
                ID_b_epidural,0
                ID_b_intraparenchymal,0
                ID_b_intraventricular,0
                ID_b_subarachnoid,0
                ID_b_subdural,0
                ID_b_any,0
                ID_b_any,0
                ID_c_epidural,0
                ID_c_intraparenchymal,0
                ID_c_intraventricular,0
                ID_c_subarachnoid,1
                ID_c_subdural,0
                ID_c_any,1
                ID_d_epidural,0
                ID_d_intraparenchymal,0
                ID_d_intraventricular,0
                ID_d_subarachnoid,0
                ID_d_subdural,0
                ID_d_any,0
                ID_a_subdural,1
                """);
        CliTest.Run r = run("labels", "summary", csv.toString());
        assertEquals(0, r.exit(), r.err());
        assertEquals("""
                any 2 2
                epidural 4 0
                intraparenchymal 3 1
                intraventricular 4 0
                subarachnoid 3 1
                subdural 3 1
                images 4
                positives 2
                duplicates 2
                """, r.out());
        assertEquals("", r.err());
    }

    @Test
    void errorsNameTheFileAndLine(@TempDir Path dir) throws Exception {
        Path csv = dir.resolve("train.csv");
        Files.writeString(csv, "ID,Label\nID_a_epidural,0\nID_a_any,yes\n");
        CliTest.Run r = run("labels", "summary", csv.toString());
        assertEquals(1, r.exit());
        assertEquals("ich labels summary: " + csv + ": line 3: label 'yes' is not 0 or 1", r.err().strip());
        assertEquals("", r.out());

        CliTest.Run missing = run("labels", "summary", dir.resolve("nope.csv").toString());
        assertEquals(2, missing.exit());
        assertTrue(missing.err().contains("nope.csv is not a file"), missing.err());

        CliTest.Run usage = run("labels", "summary");
        assertEquals(2, usage.exit());
        assertTrue(usage.err().contains("CSV"), usage.err());
    }

    @Test
    void listedInTheHelp() {
        assertTrue(run("--help").out().contains("labels"));
        assertTrue(run("labels", "--help").out().contains("summary"));
    }
}
