package ich.nn.io;

import ich.io.AtomicFile;
import ich.nn.Tensor;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The safetensors format as the Python {@code safetensors} library reads and writes it: an unsigned 64-bit
 * little-endian header length N, N bytes of UTF-8 JSON, then the data section. The JSON object maps each
 * tensor name to {@code {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}} (offsets relative to
 * the data section; C order, little-endian) and optionally {@code "__metadata__"} to a string-to-string map.
 *
 * <p><b>Reading</b> ({@link #open}) maps the file and validates it the way the library does, and more
 * strictly: header length at most 100 MB and within the file, strict UTF-8 and JSON, known dtypes, byte
 * counts matching the shapes, tensors tiling the data section with no gap or overlap up to its very end.
 * Floating-point tensors (F32, F16, BF16) are read as float32; I64 and other integer tensors can be listed
 * and read as longs or skipped. Every problem is a {@link SafeTensorsFormatException} naming the file.
 *
 * <p><b>Writing</b> ({@link Writer}) produces the bytes the library's {@code serialize} produces for the same
 * tensors: entries sorted by dtype, widest alignment first (the library's dtype order, descending), then by
 * name; compact JSON with fields in the order dtype, shape, data_offsets; the header padded with spaces to a
 * multiple of 8 so every tensor starts aligned. The one freedom is {@code __metadata__}, which the library
 * keeps in a hash map (so its order is arbitrary there): here its keys are sorted. Files are written
 * atomically.
 */
public final class SafeTensors implements AutoCloseable {
    /** The library's cap on the header; bigger is a corrupt or foreign file. */
    public static final long MAX_HEADER_BYTES = 100_000_000;
    static final String METADATA_KEY = "__metadata__";

    private static final ValueLayout.OfFloat F32_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt I32_LE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong I64_LE = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final boolean NATIVE_LE = ByteOrder.nativeOrder() == ByteOrder.LITTLE_ENDIAN;

    /**
     * Element types, declared in the library's order: it sorts a file's tensors by this order, descending,
     * so that the widest alignments come first and every tensor stays aligned.
     */
    public enum DType {
        BOOL(1), U8(1), I8(1), F8_E5M2(1), F8_E4M3(1), I16(2), U16(2), F16(2), BF16(2), I32(4), U32(4), F32(4),
        F64(8), I64(8), U64(8);

        private final int bytes;

        DType(int bytes) { this.bytes = bytes; }

        /** Bytes per element. */
        public int bytes() { return bytes; }

        /** Whether {@link #floats} reads it (converted to float32). */
        public boolean isFloat() { return this == F32 || this == F16 || this == BF16; }

        static DType parse(String s) {
            for (DType d : values()) if (d.name().equals(s)) return d;
            return null;
        }
    }

    /** One tensor of a file: its dtype, shape and byte range in the data section. */
    public record Entry(String name, DType dtype, long[] shape, long begin, long end) {
        public long elements() {
            long n = 1;
            for (long d : shape) n *= d;
            return n;
        }

        public long byteSize() { return end - begin; }

        /** The shape as ints, as {@link Tensor} takes it. */
        public int[] intShape() {
            int[] s = new int[shape.length];
            for (int i = 0; i < s.length; i++) {
                if (shape[i] > Integer.MAX_VALUE) throw new IllegalStateException(name + ": dimension " + shape[i] + " too large");
                s[i] = (int) shape[i];
            }
            return s;
        }

        @Override
        public String toString() { return name + " " + dtype + Arrays.toString(shape); }
    }

    private final Path file;
    private final Arena arena;
    private final MemorySegment data;
    private final Map<String, String> metadata;
    private final Map<String, Entry> entries;

    private SafeTensors(Path file, Arena arena, MemorySegment data, Map<String, String> metadata, Map<String, Entry> entries) {
        this.file = file;
        this.arena = arena;
        this.data = data;
        this.metadata = metadata;
        this.entries = entries;
    }

    /** Maps and validates a file; {@link #close} unmaps it. */
    public static SafeTensors open(Path file) throws IOException {
        Arena arena = Arena.ofShared();
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = channel.size();
            if (size < 8) throw error(file, "is " + size + " bytes long, too short for the 8-byte header length");
            MemorySegment all = channel.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            long n = all.get(I64_LE, 0);
            if (n < 0 || n > MAX_HEADER_BYTES) {
                throw error(file, "declares a header of " + Long.toUnsignedString(n) + " bytes, more than the "
                        + MAX_HEADER_BYTES + " allowed: not a safetensors file, or a corrupt one");
            }
            if (8 + n > size) throw error(file, "declares a header of " + n + " bytes but only " + (size - 8) + " follow the length");
            byte[] headerBytes = all.asSlice(8, n).toArray(ValueLayout.JAVA_BYTE);
            MemorySegment data = all.asSlice(8 + n);
            Header header = parseHeader(file, headerBytes, data.byteSize());
            return new SafeTensors(file, arena, data, header.metadata, header.entries);
        } catch (IOException | RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    private record Header(Map<String, String> metadata, Map<String, Entry> entries) {}

    private static Header parseHeader(Path file, byte[] bytes, long dataBytes) throws SafeTensorsFormatException {
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(bytes)).toString();
        } catch (CharacterCodingException e) {
            throw error(file, "has a header that is not valid UTF-8");
        }
        if (text.isEmpty() || text.charAt(0) != '{') throw error(file, "has a header that does not start with '{'");
        Object json;
        try {
            json = HeaderJson.parse(text);
        } catch (HeaderJson.SyntaxException e) {
            throw error(file, "has a header that is not valid JSON: " + e.getMessage());
        }
        if (!(json instanceof Map<?, ?> top)) throw error(file, "has a header that is not a JSON object");
        Map<String, String> metadata = new LinkedHashMap<>();
        List<Entry> list = new ArrayList<>();
        for (Map.Entry<?, ?> e : top.entrySet()) {
            String name = (String) e.getKey();
            if (name.equals(METADATA_KEY)) {
                if (!(e.getValue() instanceof Map<?, ?> m)) throw error(file, METADATA_KEY + " is not a JSON object");
                for (Map.Entry<?, ?> kv : m.entrySet()) {
                    if (!(kv.getValue() instanceof String s)) {
                        throw error(file, METADATA_KEY + " value of \"" + kv.getKey() + "\" is not a string");
                    }
                    metadata.put((String) kv.getKey(), s);
                }
            } else {
                list.add(entry(file, name, e.getValue()));
            }
        }
        // The library sorts by offsets and then requires each tensor to start where the previous one ended.
        List<Entry> byOffset = new ArrayList<>(list);
        byOffset.sort(Comparator.comparingLong(Entry::begin).thenComparingLong(Entry::end));
        long at = 0;
        Entry previous = null;
        for (Entry x : byOffset) {
            if (x.begin < at) {
                throw error(file, "tensor " + x.name + " data [" + x.begin + ", " + x.end + ") overlaps tensor "
                        + previous.name + " [" + previous.begin + ", " + previous.end + ")");
            }
            if (x.begin > at) {
                throw error(file, "has " + (x.begin - at) + " unused bytes in the data section before tensor " + x.name
                        + " (offset " + at + " to " + x.begin + ")");
            }
            at = x.end;
            previous = x;
        }
        if (at != dataBytes) {
            throw error(file, at < dataBytes
                    ? "has " + dataBytes + " data bytes but its tensors cover only " + at + " (trailing bytes)"
                    : "tensors need " + at + " data bytes but the file has only " + dataBytes + " (truncated)");
        }
        Map<String, Entry> entries = new LinkedHashMap<>();
        for (Entry x : byOffset) entries.put(x.name, x);
        return new Header(Collections.unmodifiableMap(metadata), Collections.unmodifiableMap(entries));
    }

    private static Entry entry(Path file, String name, Object value) throws SafeTensorsFormatException {
        if (!(value instanceof Map<?, ?> info)) throw error(file, "tensor " + name + " is not described by a JSON object");
        for (Object key : info.keySet()) {
            if (!key.equals("dtype") && !key.equals("shape") && !key.equals("data_offsets")) {
                throw error(file, "tensor " + name + " has an unknown field \"" + key + "\"");
            }
        }
        if (!(info.get("dtype") instanceof String dtypeName)) throw error(file, "tensor " + name + " has no dtype string");
        DType dtype = DType.parse(dtypeName);
        if (dtype == null) throw error(file, "tensor " + name + " has an unknown dtype " + dtypeName);
        long[] shape = longs(file, name, "shape", info.get("shape"), -1);
        long[] offsets = longs(file, name, "data_offsets", info.get("data_offsets"), 2);
        long begin = offsets[0], end = offsets[1];
        if (end < begin) throw error(file, "tensor " + name + " has data_offsets [" + begin + ", " + end + "] that end before they begin");
        long bytes = dtype.bytes;
        try {
            for (long d : shape) bytes = Math.multiplyExact(bytes, d);
        } catch (ArithmeticException e) {
            throw error(file, "tensor " + name + " shape " + Arrays.toString(shape) + " overflows 64 bits");
        }
        if (bytes != end - begin) {
            throw error(file, "tensor " + name + " " + dtype + Arrays.toString(shape) + " needs " + bytes
                    + " bytes but data_offsets [" + begin + ", " + end + "] give " + (end - begin));
        }
        return new Entry(name, dtype, shape, begin, end);
    }

    /** A JSON array of non-negative integers; {@code length} -1 for any length. */
    private static long[] longs(Path file, String tensor, String field, Object value, int length) throws SafeTensorsFormatException {
        if (!(value instanceof List<?> list)) throw error(file, "tensor " + tensor + " has no " + field + " array");
        if (length >= 0 && list.size() != length) throw error(file, "tensor " + tensor + " " + field + " has " + list.size() + " values, not " + length);
        long[] out = new long[list.size()];
        for (int i = 0; i < out.length; i++) {
            if (!(list.get(i) instanceof Long v) || v < 0) {
                throw error(file, "tensor " + tensor + " " + field + " holds " + list.get(i) + ", not a non-negative integer");
            }
            out[i] = v;
        }
        return out;
    }

    static SafeTensorsFormatException error(Path file, String problem) {
        return new SafeTensorsFormatException(file + ": " + problem);
    }

    public Path file() { return file; }

    /** The {@code __metadata__} map (empty when absent), in file order. */
    public Map<String, String> metadata() { return metadata; }

    /** The tensors in data order. */
    public List<Entry> entries() { return List.copyOf(entries.values()); }

    /** Tensor names in data order. */
    public List<String> names() { return List.copyOf(entries.keySet()); }

    public boolean contains(String name) { return entries.containsKey(name); }

    /** The entry named {@code name}. */
    public Entry entry(String name) throws SafeTensorsFormatException {
        Entry e = entries.get(name);
        if (e == null) throw error(file, "has no tensor " + name);
        return e;
    }

    /** The raw little-endian bytes of a tensor (read-only, valid until {@link #close}). */
    public MemorySegment bytes(String name) throws SafeTensorsFormatException {
        Entry e = entry(name);
        return data.asSlice(e.begin, e.byteSize());
    }

    /** A floating-point tensor's values as float32 (F16 and BF16 widened exactly). */
    public float[] floats(String name) throws SafeTensorsFormatException {
        Entry e = entry(name);
        requireFloat(e);
        if (e.elements() > Integer.MAX_VALUE - 8) throw error(file, "tensor " + name + " is too large for an array");
        float[] out = new float[(int) e.elements()];
        MemorySegment src = data.asSlice(e.begin, e.byteSize());
        switch (e.dtype) {
            case F32 -> MemorySegment.copy(src, F32_LE, 0, out, 0, out.length);
            case F16 -> { for (int i = 0; i < out.length; i++) out[i] = Float.float16ToFloat(src.getAtIndex(I16_LE, i)); }
            case BF16 -> { for (int i = 0; i < out.length; i++) out[i] = bf16ToFloat(src.getAtIndex(I16_LE, i)); }
            default -> throw new AssertionError(e.dtype);
        }
        return out;
    }

    /** An integer tensor's values (I64, I32, I16, I8, U8, U16, U32, BOOL) as longs; U64 must fit a signed long. */
    public long[] longs(String name) throws SafeTensorsFormatException {
        Entry e = entry(name);
        if (e.elements() > Integer.MAX_VALUE - 8) throw error(file, "tensor " + name + " is too large for an array");
        long[] out = new long[(int) e.elements()];
        MemorySegment src = data.asSlice(e.begin, e.byteSize());
        for (int i = 0; i < out.length; i++) {
            out[i] = switch (e.dtype) {
                case I64 -> src.getAtIndex(I64_LE, i);
                case U64 -> {
                    long v = src.getAtIndex(I64_LE, i);
                    if (v < 0) throw error(file, "tensor " + name + " holds " + Long.toUnsignedString(v) + ", beyond a signed long");
                    yield v;
                }
                case I32 -> src.getAtIndex(I32_LE, i);
                case U32 -> Integer.toUnsignedLong(src.getAtIndex(I32_LE, i));
                case I16 -> src.getAtIndex(I16_LE, i);
                case U16 -> Short.toUnsignedLong(src.getAtIndex(I16_LE, i));
                case I8 -> src.get(ValueLayout.JAVA_BYTE, i);
                case U8, BOOL -> Byte.toUnsignedLong(src.get(ValueLayout.JAVA_BYTE, i));
                default -> throw error(file, "tensor " + name + " is " + e.dtype + ", not an integer type");
            };
        }
        return out;
    }

    /** A floating-point tensor as a new float32 {@link Tensor} in {@code arena}. */
    public Tensor tensor(String name, Arena arena) throws SafeTensorsFormatException {
        Entry e = entry(name);
        requireFloat(e);
        Tensor t = Tensor.allocate(arena, e.intShape());
        readInto(e, t);
        return t;
    }

    /** Copies a floating-point tensor into {@code target}, whose shape must be the same. */
    public void readInto(String name, Tensor target) throws SafeTensorsFormatException {
        Entry e = entry(name);
        requireFloat(e);
        if (!Arrays.equals(e.intShape(), target.shape())) {
            throw error(file, "tensor " + name + " has shape " + Arrays.toString(e.shape) + " but the target is " + Arrays.toString(target.shape()));
        }
        readInto(e, target);
    }

    private void readInto(Entry e, Tensor target) throws SafeTensorsFormatException {
        if (e.dtype == DType.F32 && NATIVE_LE) {
            MemorySegment.copy(data, e.begin, target.data(), 0, e.byteSize());
        } else {
            target.copyFrom(floats(e.name));
        }
    }

    private void requireFloat(Entry e) throws SafeTensorsFormatException {
        if (!e.dtype.isFloat()) throw error(file, "tensor " + e.name + " is " + e.dtype + ", not F32, F16 or BF16");
    }

    /** bfloat16 is the upper half of a float32, so widening is a shift. */
    static float bf16ToFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xffff) << 16);
    }

    @Override
    public void close() {
        arena.close();
    }

    /** Float32 tensors in a file, in the order a file written by {@link Writer} holds them. */
    public static void write(Path file, Map<String, Tensor> tensors, Map<String, String> metadata) throws IOException {
        Writer w = new Writer();
        w.metadata(metadata);
        for (Map.Entry<String, Tensor> e : tensors.entrySet()) w.add(e.getKey(), e.getValue());
        w.write(file);
    }

    /** Collects tensors and metadata, then writes them as one file. */
    public static final class Writer {
        private final Map<String, String> metadata = new TreeMap<>();
        private final Map<String, Pending> tensors = new LinkedHashMap<>();

        private record Pending(String name, byte[] utf8, DType dtype, long[] shape, MemorySegment bytes) {}

        public Writer metadata(String key, String value) {
            if (key == null || value == null) throw new IllegalArgumentException("metadata keys and values must not be null");
            metadata.put(key, value);
            return this;
        }

        public Writer metadata(Map<String, String> entries) {
            entries.forEach(this::metadata);
            return this;
        }

        /** A float32 tensor (host memory); its bytes are read when the file is written. */
        public Writer add(String name, Tensor tensor) {
            if (!tensor.isHost()) throw new IllegalArgumentException(name + ": copy " + tensor + " to the host before saving it");
            long[] shape = Arrays.stream(tensor.shape()).asLongStream().toArray();
            MemorySegment bytes = tensor.data().asSlice(0, tensor.bytes());
            if (!NATIVE_LE) {
                MemorySegment le = MemorySegment.ofArray(new byte[(int) tensor.bytes()]);
                for (long i = 0; i < tensor.size(); i++) le.setAtIndex(F32_LE, i, tensor.get(i));
                bytes = le;
            }
            return put(name, DType.F32, shape, bytes);
        }

        /** A tensor of any dtype from its little-endian bytes, e.g. an I64 counter. */
        public Writer add(String name, DType dtype, long[] shape, byte[] littleEndian) {
            return put(name, dtype, shape.clone(), MemorySegment.ofArray(littleEndian.clone()));
        }

        /** An I64 tensor; a scalar when {@code shape} is empty. */
        public Writer addLongs(String name, long[] shape, long... values) {
            MemorySegment bytes = MemorySegment.ofArray(new byte[values.length * 8]);
            for (int i = 0; i < values.length; i++) bytes.setAtIndex(I64_LE, i, values[i]);
            return put(name, DType.I64, shape.clone(), bytes);
        }

        private Writer put(String name, DType dtype, long[] shape, MemorySegment bytes) {
            if (name == null || name.isEmpty()) throw new IllegalArgumentException("a tensor needs a name");
            if (name.equals(METADATA_KEY)) throw new IllegalArgumentException(METADATA_KEY + " is reserved for metadata");
            if (tensors.containsKey(name)) throw new IllegalArgumentException("tensor " + name + " added twice");
            long n = dtype.bytes;
            for (long d : shape) {
                if (d < 0) throw new IllegalArgumentException(name + ": negative dimension in " + Arrays.toString(shape));
                n = Math.multiplyExact(n, d);
            }
            if (n != bytes.byteSize()) {
                throw new IllegalArgumentException(name + ": " + bytes.byteSize() + " bytes for " + dtype + Arrays.toString(shape) + ", expected " + n);
            }
            tensors.put(name, new Pending(name, name.getBytes(StandardCharsets.UTF_8), dtype, shape, bytes));
            return this;
        }

        /** The library's order: dtype descending, then name by its UTF-8 bytes (Rust's string order). */
        private List<Pending> ordered() {
            List<Pending> list = new ArrayList<>(tensors.values());
            list.sort((a, b) -> a.dtype != b.dtype ? b.dtype.compareTo(a.dtype) : Arrays.compareUnsigned(a.utf8, b.utf8));
            return list;
        }

        /** The 8-byte length and the padded JSON header. */
        byte[] header(List<Pending> order) {
            StringBuilder sb = new StringBuilder("{");
            if (!metadata.isEmpty()) {
                HeaderJson.quote(sb, METADATA_KEY);
                sb.append(":{");
                boolean first = true;
                for (Map.Entry<String, String> e : metadata.entrySet()) {
                    if (!first) sb.append(',');
                    first = false;
                    HeaderJson.quote(sb, e.getKey());
                    sb.append(':');
                    HeaderJson.quote(sb, e.getValue());
                }
                sb.append('}');
            }
            long offset = 0;
            for (Pending p : order) {
                if (sb.length() > 1) sb.append(',');
                HeaderJson.quote(sb, p.name);
                sb.append(":{\"dtype\":\"").append(p.dtype.name()).append("\",\"shape\":[");
                for (int i = 0; i < p.shape.length; i++) {
                    if (i > 0) sb.append(',');
                    sb.append(p.shape[i]);
                }
                long end = offset + p.bytes.byteSize();
                sb.append("],\"data_offsets\":[").append(offset).append(',').append(end).append("]}");
                offset = end;
            }
            sb.append('}');
            byte[] json = sb.toString().getBytes(StandardCharsets.UTF_8);
            int padded = (json.length + 7) & ~7;
            if (padded > MAX_HEADER_BYTES) throw new IllegalStateException("header of " + padded + " bytes exceeds the format's limit");
            byte[] out = new byte[8 + padded];
            MemorySegment.ofArray(out).set(I64_LE, 0, padded);
            System.arraycopy(json, 0, out, 8, json.length);
            Arrays.fill(out, 8 + json.length, out.length, (byte) ' ');
            return out;
        }

        /** The whole file in memory. */
        public byte[] toBytes() {
            List<Pending> order = ordered();
            byte[] header = header(order);
            long total = header.length;
            for (Pending p : order) total += p.bytes.byteSize();
            if (total > Integer.MAX_VALUE - 8) throw new IllegalStateException(total + " bytes do not fit an array; write a file");
            byte[] out = Arrays.copyOf(header, (int) total);
            long at = header.length;
            for (Pending p : order) {
                MemorySegment.copy(p.bytes, 0, MemorySegment.ofArray(out), at, p.bytes.byteSize());
                at += p.bytes.byteSize();
            }
            return out;
        }

        /** Writes the file atomically (temporary sibling, flushed, renamed over the target). */
        public void write(Path file) throws IOException {
            List<Pending> order = ordered();
            byte[] header = header(order);
            AtomicFile.write(file, true, channel -> {
                writeFully(channel, ByteBuffer.wrap(header));
                for (Pending p : order) writeFully(channel, p.bytes.asByteBuffer());
            });
        }

        private static void writeFully(FileChannel channel, ByteBuffer buffer) throws IOException {
            while (buffer.hasRemaining()) channel.write(buffer);
        }
    }
}
