package ich.nn.io;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Just enough JSON for a safetensors header: a strict reader (RFC 8259; objects keep their key order and reject
 * a repeated key, integers stay exact as {@code long}, other numbers become {@code double}) and the string
 * quoting serde_json uses when it writes one, so our headers are byte-identical to the Python library's.
 *
 * <p>Written here rather than taken from a JSON library because a header is small and fixed in form, and the
 * application jar stays free of a JSON dependency.
 */
final class HeaderJson {
    /** Deeper nesting than a header ever has; bounds the recursion on hostile input. */
    private static final int MAX_DEPTH = 64;

    private final String text;
    private int pos;

    private HeaderJson(String text) {
        this.text = text;
    }

    /** Thrown with the character offset of the problem; the caller adds the file name. */
    static final class SyntaxException extends Exception {
        SyntaxException(String message, int offset) {
            super(message + " at character " + offset);
        }
    }

    /**
     * One JSON value filling {@code text} (whitespace around it allowed): a {@code Map<String, Object>} (ordered),
     * {@code List<Object>}, {@code String}, {@code Long}, {@code Double}, {@code Boolean} or null.
     */
    static Object parse(String text) throws SyntaxException {
        HeaderJson p = new HeaderJson(text);
        p.skipWhitespace();
        Object value = p.value(0);
        p.skipWhitespace();
        if (p.pos != text.length()) throw new SyntaxException("unexpected " + p.describe() + " after the JSON value", p.pos);
        return value;
    }

    private Object value(int depth) throws SyntaxException {
        if (depth > MAX_DEPTH) throw new SyntaxException("nesting deeper than " + MAX_DEPTH, pos);
        if (pos >= text.length()) throw new SyntaxException("unexpected end of the JSON text", pos);
        char c = text.charAt(pos);
        return switch (c) {
            case '{' -> object(depth);
            case '[' -> array(depth);
            case '"' -> string();
            case 't' -> literal("true", Boolean.TRUE);
            case 'f' -> literal("false", Boolean.FALSE);
            case 'n' -> literal("null", null);
            default -> {
                if (c == '-' || (c >= '0' && c <= '9')) yield number();
                throw new SyntaxException("unexpected " + describe(), pos);
            }
        };
    }

    private Map<String, Object> object(int depth) throws SyntaxException {
        Map<String, Object> map = new LinkedHashMap<>();
        pos++;
        skipWhitespace();
        if (peek() == '}') {
            pos++;
            return map;
        }
        while (true) {
            skipWhitespace();
            if (peek() != '"') throw new SyntaxException("expected a key string but found " + describe(), pos);
            int keyAt = pos;
            String key = string();
            skipWhitespace();
            expect(':');
            skipWhitespace();
            Object v = value(depth + 1);
            if (map.containsKey(key)) throw new SyntaxException("key \"" + key + "\" appears twice", keyAt);
            map.put(key, v);
            skipWhitespace();
            char c = peek();
            pos++;
            if (c == '}') return map;
            if (c != ',') throw new SyntaxException("expected ',' or '}' but found " + describeAt(pos - 1), pos - 1);
        }
    }

    private List<Object> array(int depth) throws SyntaxException {
        List<Object> list = new ArrayList<>();
        pos++;
        skipWhitespace();
        if (peek() == ']') {
            pos++;
            return list;
        }
        while (true) {
            skipWhitespace();
            list.add(value(depth + 1));
            skipWhitespace();
            char c = peek();
            pos++;
            if (c == ']') return list;
            if (c != ',') throw new SyntaxException("expected ',' or ']' but found " + describeAt(pos - 1), pos - 1);
        }
    }

    private String string() throws SyntaxException {
        int start = pos++;
        StringBuilder sb = new StringBuilder();
        while (true) {
            if (pos >= text.length()) throw new SyntaxException("unterminated string", start);
            char c = text.charAt(pos++);
            if (c == '"') return sb.toString();
            if (c < 0x20) throw new SyntaxException("unescaped control character in a string", pos - 1);
            if (c != '\\') {
                sb.append(c);
                continue;
            }
            if (pos >= text.length()) throw new SyntaxException("unterminated string", start);
            char e = text.charAt(pos++);
            switch (e) {
                case '"', '\\', '/' -> sb.append(e);
                case 'b' -> sb.append('\b');
                case 'f' -> sb.append('\f');
                case 'n' -> sb.append('\n');
                case 'r' -> sb.append('\r');
                case 't' -> sb.append('\t');
                case 'u' -> {
                    if (pos + 4 > text.length()) throw new SyntaxException("truncated \\u escape", pos - 2);
                    int code = 0;
                    for (int i = 0; i < 4; i++) {
                        int d = Character.digit(text.charAt(pos + i), 16);
                        if (d < 0) throw new SyntaxException("bad \\u escape", pos - 2);
                        code = code * 16 + d;
                    }
                    pos += 4;
                    sb.append((char) code);
                }
                default -> throw new SyntaxException("bad escape \\" + e, pos - 2);
            }
        }
    }

    private Object number() throws SyntaxException {
        int start = pos;
        if (peek() == '-') pos++;
        int intStart = pos;
        while (pos < text.length() && isDigit(text.charAt(pos))) pos++;
        int intDigits = pos - intStart;
        if (intDigits == 0) throw new SyntaxException("a number needs digits", start);
        if (intDigits > 1 && text.charAt(intStart) == '0') throw new SyntaxException("a number may not have leading zeros", start);
        boolean integral = true;
        if (pos < text.length() && text.charAt(pos) == '.') {
            integral = false;
            pos++;
            int f = pos;
            while (pos < text.length() && isDigit(text.charAt(pos))) pos++;
            if (pos == f) throw new SyntaxException("a fraction needs digits", start);
        }
        if (pos < text.length() && (text.charAt(pos) == 'e' || text.charAt(pos) == 'E')) {
            integral = false;
            pos++;
            if (pos < text.length() && (text.charAt(pos) == '+' || text.charAt(pos) == '-')) pos++;
            int x = pos;
            while (pos < text.length() && isDigit(text.charAt(pos))) pos++;
            if (pos == x) throw new SyntaxException("an exponent needs digits", start);
        }
        String s = text.substring(start, pos);
        if (integral) {
            try {
                return Long.parseLong(s);
            } catch (NumberFormatException tooLong) {
                throw new SyntaxException("integer " + s + " does not fit 64 bits", start);
            }
        }
        return Double.parseDouble(s);
    }

    private Object literal(String word, Object value) throws SyntaxException {
        if (!text.startsWith(word, pos)) throw new SyntaxException("unexpected " + describe(), pos);
        pos += word.length();
        return value;
    }

    private void expect(char c) throws SyntaxException {
        if (peek() != c) throw new SyntaxException("expected '" + c + "' but found " + describe(), pos);
        pos++;
    }

    private char peek() throws SyntaxException {
        if (pos >= text.length()) throw new SyntaxException("unexpected end of the JSON text", pos);
        return text.charAt(pos);
    }

    private void skipWhitespace() {
        while (pos < text.length()) {
            char c = text.charAt(pos);
            if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return;
            pos++;
        }
    }

    private String describe() {
        return describeAt(pos);
    }

    private String describeAt(int at) {
        if (at >= text.length()) return "end of text";
        char c = text.charAt(at);
        return c >= 0x20 && c < 0x7f ? "'" + c + "'" : String.format("character U+%04X", (int) c);
    }

    private static boolean isDigit(char c) {
        return c >= '0' && c <= '9';
    }

    /**
     * A JSON string literal as serde_json writes it: {@code "} and {@code \} escaped, the short escapes for
     * \b \f \n \r \t, a six-character {@code u00XX} escape (lower-case hex) for other control characters, everything else (non-ASCII
     * included) as is.
     */
    static void quote(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\b' -> sb.append("\\b");
                case '\f' -> sb.append("\\f");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                default -> {
                    if (c < 0x20) sb.append("\\u00").append(Character.forDigit(c >> 4, 16)).append(Character.forDigit(c & 15, 16));
                    else sb.append(c);
                }
            }
        }
        sb.append('"');
    }
}
