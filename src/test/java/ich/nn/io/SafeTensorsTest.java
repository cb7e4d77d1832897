package ich.nn.io;

import ich.nn.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

class SafeTensorsTest {
    @TempDir
    Path dir;

    /** A file as the format defines it: u64 LE header length, the header padded with spaces to 8, the data. */
    static byte[] file(String json, byte[] data) {
        byte[] header = json.getBytes(StandardCharsets.UTF_8);
        int padded = (header.length + 7) / 8 * 8;
        ByteBuffer b = ByteBuffer.allocate(8 + padded + data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(padded).put(header);
        for (int i = header.length; i < padded; i++) b.put((byte) ' ');
        return b.put(data).array();
    }

    static byte[] floatsLe(float... v) {
        ByteBuffer b = ByteBuffer.allocate(v.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (float f : v) b.putFloat(f);
        return b.array();
    }

    static byte[] shortsLe(int... v) {
        ByteBuffer b = ByteBuffer.allocate(v.length * 2).order(ByteOrder.LITTLE_ENDIAN);
        for (int s : v) b.putShort((short) s);
        return b.array();
    }

    static byte[] longsLe(long... v) {
        ByteBuffer b = ByteBuffer.allocate(v.length * 8).order(ByteOrder.LITTLE_ENDIAN);
        for (long l : v) b.putLong(l);
        return b.array();
    }

    static byte[] concat(byte[]... parts) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (byte[] p : parts) out.writeBytes(p);
        return out.toByteArray();
    }

    private Path write(String name, byte[] bytes) throws IOException {
        Path f = dir.resolve(name);
        Files.write(f, bytes);
        return f;
    }

    @Test
    void writerProducesTheSpecBytesForOneTensor() {
        try (Arena arena = Arena.ofConfined()) {
            Tensor t = Tensor.of(arena, new float[]{0, 1, 2, 3, 4, 5}, 1, 2, 3);
            byte[] got = new SafeTensors.Writer().add("attn.0", t).toBytes();
            // 64 bytes of JSON: already a multiple of 8, so no padding.
            String json = "{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}";
            assertEquals(64, json.length());
            assertArrayEquals(file(json, floatsLe(0, 1, 2, 3, 4, 5)), got);
            assertEquals(64, got[0]);

            // One character shorter: padded with 7 spaces to 72 so the data stays 8-byte aligned.
            byte[] padded = new SafeTensors.Writer().add("attn0", t.reshape(1, 1, 2, 3)).toBytes();
            String json2 = "{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}";
            assertEquals(65, json2.length());
            assertEquals(72, padded[0]);
            assertEquals("       ", new String(padded, 8 + 65, 7, StandardCharsets.US_ASCII));
            assertArrayEquals(file(json2, floatsLe(0, 1, 2, 3, 4, 5)), padded);
        }
    }

    @Test
    void emptyFilesAndMetadataMatchTheSpec() {
        assertArrayEquals(new byte[]{8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '}, new SafeTensors.Writer().toBytes());
        byte[] withMeta = new SafeTensors.Writer().metadata("framework", "pt").toBytes();
        assertArrayEquals(file("{\"__metadata__\":{\"framework\":\"pt\"}}", new byte[0]), withMeta);
        assertEquals(40, withMeta[0], "header length as the library writes it");
        assertEquals(48, withMeta.length);
    }

    @Test
    void entriesAreOrderedByDtypeAlignmentThenName() throws IOException {
        SafeTensors.Writer w = new SafeTensors.Writer()
                .metadata("z", "last").metadata("a", "first \"quoted\"\n")
                .add("b", SafeTensors.DType.F16, new long[]{1}, shortsLe(0x3C00))
                .addLongs("n", new long[]{}, 7)
                .add("c", SafeTensors.DType.F32, new long[]{1}, floatsLe(3))
                .add("a", SafeTensors.DType.F32, new long[]{2}, floatsLe(1, 2))
                .addLongs("m", new long[]{1}, -1);
        String json = "{\"__metadata__\":{\"a\":\"first \\\"quoted\\\"\\n\",\"z\":\"last\"},"
                + "\"m\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]},"
                + "\"n\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[8,16]},"
                + "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]},"
                + "\"c\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[24,28]},"
                + "\"b\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[28,30]}}";
        byte[] expected = file(json, concat(longsLe(-1, 7), floatsLe(1, 2, 3), shortsLe(0x3C00)));
        assertArrayEquals(expected, w.toBytes(), () -> new String(w.toBytes(), StandardCharsets.UTF_8));

        Path f = dir.resolve("mixed.safetensors");
        w.write(f);
        assertArrayEquals(expected, Files.readAllBytes(f));
        try (SafeTensors st = SafeTensors.open(f)) {
            assertEquals(List.of("m", "n", "a", "c", "b"), st.names());
            assertEquals(Map.of("a", "first \"quoted\"\n", "z", "last"), st.metadata());
            assertArrayEquals(new long[]{7}, st.longs("n"));
            assertArrayEquals(new long[]{-1}, st.longs("m"));
            assertEquals(0, st.entry("n").shape().length);
            assertArrayEquals(new float[]{1, 2}, st.floats("a"));
            assertArrayEquals(new float[]{1}, st.floats("b"));
        }
    }

    @Test
    void roundTripsFloat32TensorsAndMetadata() throws IOException {
        Path f = dir.resolve("model.safetensors");
        try (Arena arena = Arena.ofConfined()) {
            Map<String, Tensor> tensors = new LinkedHashMap<>();
            java.util.Random r = new java.util.Random(1);
            int[][] shapes = {{32, 3, 3, 3}, {32}, {6, 1280}, {1}};
            String[] names = {"conv_stem.weight", "bn1.running_mean", "classifier.weight", "é.unicode"};
            for (int i = 0; i < shapes.length; i++) {
                Tensor t = Tensor.allocate(arena, shapes[i]);
                for (long j = 0; j < t.size(); j++) t.set(j, (float) r.nextGaussian());
                tensors.put(names[i], t);
            }
            SafeTensors.write(f, tensors, Map.of("format", "pt", "note", "ünï"));
            try (SafeTensors st = SafeTensors.open(f)) {
                assertEquals(List.of("bn1.running_mean", "classifier.weight", "conv_stem.weight", "é.unicode"), st.names());
                assertEquals(Map.of("format", "pt", "note", "ünï"), st.metadata());
                for (String name : names) {
                    Tensor back = st.tensor(name, arena);
                    assertArrayEquals(tensors.get(name).shape(), back.shape(), name);
                    assertArrayEquals(tensors.get(name).toArray(), back.toArray(), name);
                }
                Tensor target = Tensor.allocate(arena, 32);
                st.readInto("bn1.running_mean", target);
                assertArrayEquals(tensors.get("bn1.running_mean").toArray(), target.toArray());
                SafeTensorsFormatException e = assertThrows(SafeTensorsFormatException.class,
                        () -> st.readInto("bn1.running_mean", Tensor.allocate(arena, 16)));
                assertTrue(e.getMessage().contains("[32]") && e.getMessage().contains("[16]"), e.getMessage());
            }
            // Data starts 8-byte aligned after the header, and the file is exactly header + data.
            long n = ByteBuffer.wrap(Files.readAllBytes(f), 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
            assertEquals(0, n % 8);
            assertEquals(8 + n + 4L * (32 * 27 + 32 + 6 * 1280 + 1), Files.size(f));
        }
    }

    @Test
    void overwritesAtomicallyWithoutLeavingTemporaryFiles() throws IOException {
        Path f = dir.resolve("w.safetensors");
        Files.writeString(f, "old");
        new SafeTensors.Writer().addLongs("x", new long[]{2}, 1, 2).write(f);
        try (SafeTensors st = SafeTensors.open(f)) {
            assertArrayEquals(new long[]{1, 2}, st.longs("x"));
        }
        try (var files = Files.list(dir)) {
            assertEquals(List.of(f), files.toList());
        }
    }

    @Test
    void widensHalfAndBfloat16Exactly() throws IOException {
        // F16: 1, -2, largest finite, smallest subnormal 2^-24, +inf, 0x3555 (1 + 341/1024) / 4
        // BF16: 1, -5, 0x4049 = 3.140625, smallest subnormal 2^-133, -0
        String json = "{\"h\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[0,12]},"
                + "\"b\":{\"dtype\":\"BF16\",\"shape\":[5],\"data_offsets\":[12,22]}}";
        Path f = write("half.safetensors", file(json, concat(shortsLe(0x3C00, 0xC000, 0x7BFF, 0x0001, 0x7C00, 0x3555),
                shortsLe(0x3F80, 0xC0A0, 0x4049, 0x0001, 0x8000))));
        try (SafeTensors st = SafeTensors.open(f); Arena arena = Arena.ofConfined()) {
            assertArrayEquals(new float[]{1f, -2f, 65504f, 0x1p-24f, Float.POSITIVE_INFINITY, (1 + 341f / 1024) / 4}, st.floats("h"));
            float[] b = st.floats("b");
            assertArrayEquals(new float[]{1f, -5f, 3.140625f, 0x1p-133f}, java.util.Arrays.copyOf(b, 4));
            assertEquals(Float.floatToRawIntBits(-0f), Float.floatToRawIntBits(b[4]));
            Tensor h = st.tensor("h", arena);
            assertArrayEquals(new int[]{2, 3}, h.shape());
            assertEquals(65504f, h.get(2));
            assertEquals(SafeTensors.DType.BF16, st.entry("b").dtype());
        }
    }

    @Test
    void integerTensorsAreReadableButNotAsFloats() throws IOException {
        String json = "{\"bn1.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]}}";
        Path f = write("i64.safetensors", file(json, longsLe(123456789012L)));
        try (SafeTensors st = SafeTensors.open(f); Arena arena = Arena.ofConfined()) {
            assertArrayEquals(new long[]{123456789012L}, st.longs("bn1.num_batches_tracked"));
            SafeTensorsFormatException e = assertThrows(SafeTensorsFormatException.class, () -> st.tensor("bn1.num_batches_tracked", arena));
            assertTrue(e.getMessage().contains("I64") && e.getMessage().contains(f.toString()), e.getMessage());
            e = assertThrows(SafeTensorsFormatException.class, () -> st.floats("nope"));
            assertTrue(e.getMessage().contains("no tensor nope"), e.getMessage());
        }
    }

    /** Each malformed file and a fragment its message must contain. */
    @Test
    void malformedFilesGiveClearErrors() throws IOException {
        byte[] four = floatsLe(1);
        String ok = "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
        Map<String, byte[]> cases = new LinkedHashMap<>();
        cases.put("too short for the 8-byte header length", new byte[]{1, 2, 3});
        cases.put("more than the 100000000 allowed", concat(longsLe(-1L), new byte[16]));
        cases.put("declares a header of 64 bytes but only 8 follow", concat(longsLe(64), "{}      ".getBytes(StandardCharsets.US_ASCII)));
        cases.put("not valid UTF-8", concat(longsLe(8), new byte[]{'{', '"', (byte) 0xC3, '"', '}', ' ', ' ', ' '}));
        cases.put("does not start with '{'", file("[]", new byte[0]));
        cases.put("not valid JSON: expected ',' or '}'", file("{\"t\":{\"dtype\":\"F32\" \"shape\":[1]}}", four));
        cases.put("not valid JSON: expected a key string but found '}'", file("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],}}", four));
        cases.put("not valid JSON: unexpected end", file("{\"t\":{\"dtype\":\"F32\"", four));
        cases.put("after the JSON value", file(ok + "x", four));
        cases.put("key \"t\" appears twice", file("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", four));
        cases.put("unknown dtype F31", file(ok.replace("F32", "F31"), four));
        cases.put("has no dtype string", file("{\"t\":{\"shape\":[1],\"data_offsets\":[0,4]}}", four));
        cases.put("unknown field \"offsets\"", file("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"offsets\":1}}", four));
        cases.put("F32[2] needs 8 bytes but data_offsets [0, 4] give 4", file(ok.replace("[1]", "[2]"), four));
        cases.put("shape holds -1, not a non-negative integer", file(ok.replace("[1]", "[-1]"), four));
        cases.put("shape holds 1.5, not a non-negative integer", file(ok.replace("[1]", "[1.5]"), four));
        cases.put("data_offsets has 3 values, not 2", file(ok.replace("[0,4]", "[0,4,8]"), four));
        cases.put("end before they begin", file(ok.replace("[0,4]", "[4,0]"), four));
        cases.put("overflows 64 bits", file(ok.replace("[1]", "[4294967296,4294967296]"), four));
        cases.put("tensor u data [0, 4) overlaps tensor t [0, 4)", file("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                + "\"u\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", concat(four, four)));
        cases.put("4 unused bytes in the data section before tensor u", file("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                + "\"u\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", concat(four, four, four)));
        cases.put("has 8 data bytes but its tensors cover only 4 (trailing bytes)", file(ok, concat(four, four)));
        cases.put("tensors need 4 data bytes but the file has only 2 (truncated)", file(ok, new byte[2]));
        cases.put("__metadata__ value of \"epoch\" is not a string", file("{\"__metadata__\":{\"epoch\":3}}", new byte[0]));
        cases.put("__metadata__ is not a JSON object", file("{\"__metadata__\":[]}", new byte[0]));
        cases.put("tensor t is not described by a JSON object", file("{\"t\":[0,4]}", new byte[0]));
        cases.put("integer 99999999999999999999 does not fit 64 bits", file(ok.replace("[0,4]", "[0,99999999999999999999]"), four));
        cases.put("leading zeros", file(ok.replace("[0,4]", "[0,04]"), four));
        cases.put("unescaped control character", file("{\"t\n\":{}}", new byte[0]));
        cases.put("nesting deeper than 64", file("{\"__metadata__\":" + "[".repeat(100) + "]".repeat(100) + "}", new byte[0]));
        int i = 0;
        for (Map.Entry<String, byte[]> c : cases.entrySet()) {
            Path f = write("bad" + i++ + ".safetensors", c.getValue());
            SafeTensorsFormatException e = assertThrows(SafeTensorsFormatException.class, () -> SafeTensors.open(f).close(), c.getKey());
            assertTrue(e.getMessage().startsWith(f.toString() + ": "), e.getMessage());
            assertTrue(e.getMessage().contains(c.getKey()), "expected \"" + c.getKey() + "\" in: " + e.getMessage());
        }
        // The two header lengths too large for the limit are both covered above under one key; check the second.
        Path huge = write("huge.safetensors", concat(longsLe(-1L), new byte[16]));
        assertTrue(assertThrows(SafeTensorsFormatException.class, () -> SafeTensors.open(huge)).getMessage().contains("18446744073709551615"));
        Path tooLong = write("toolong.safetensors", concat(longsLe(100_000_008L), new byte[16]));
        assertTrue(assertThrows(SafeTensorsFormatException.class, () -> SafeTensors.open(tooLong)).getMessage().contains("100000008"));
    }

    @Test
    void zeroSizedTensorsAndEmptyFilesAreValid() throws IOException {
        Path f = write("zero.safetensors", file("{\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,0]},"
                + "\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", floatsLe(2)));
        try (SafeTensors st = SafeTensors.open(f)) {
            assertEquals(List.of("e", "t"), st.names());
            assertEquals(0, st.floats("e").length);
            assertArrayEquals(new float[]{2}, st.floats("t"));
        }
        Path empty = write("empty.safetensors", new SafeTensors.Writer().toBytes());
        try (SafeTensors st = SafeTensors.open(empty)) {
            assertTrue(st.names().isEmpty());
            assertTrue(st.metadata().isEmpty());
        }
    }

    @Test
    void writerRejectsBadInput() {
        SafeTensors.Writer w = new SafeTensors.Writer().addLongs("a", new long[]{1}, 1);
        assertThrows(IllegalArgumentException.class, () -> w.addLongs("a", new long[]{1}, 2));
        assertThrows(IllegalArgumentException.class, () -> w.addLongs("__metadata__", new long[]{1}, 2));
        assertThrows(IllegalArgumentException.class, () -> w.add("b", SafeTensors.DType.F32, new long[]{2}, new byte[4]));
        try (Arena arena = Arena.ofConfined()) {
            Tensor device = Tensor.wrap(arena.allocate(4), false, 1);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> w.add("d", device));
            assertTrue(e.getMessage().contains("host"), e.getMessage());
        }
    }
}
