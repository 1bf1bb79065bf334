import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.table.api.TableResult;

/**
 * Runs a Flink SQL script without the SQL client (no SQL gateway jar ships on PyPI):
 * substitutes ${NAME:-default} from the environment, applies SET 'k' = 'v'; to the table
 * config, executes DDL, and submits the EXECUTE STATEMENT SET BEGIN ... END; block.
 * Usage: flink run -d -c Runner runner.jar job.sql
 */
public final class Runner {
    private static final Pattern PLACEHOLDER =
            Pattern.compile("\\$\\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?}");
    private static final Pattern SET = Pattern.compile("(?is)SET\\s+'([^']+)'\\s*=\\s*'([^']*)'");

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            throw new IllegalArgumentException("usage: Runner <file.sql>");
        }
        String sql = Files.readString(Path.of(args[0]));
        TableEnvironment tEnv = TableEnvironment.create(EnvironmentSettings.inStreamingMode());
        for (String raw : split(sql)) {
            String statement = substitute(raw);
            Matcher set = SET.matcher(statement);
            if (set.matches()) {
                tEnv.getConfig().set(set.group(1), set.group(2));
                continue;
            }
            TableResult result = tEnv.executeSql(statement);
            result.getJobClient().ifPresent(job -> System.out.println("Job ID: " + job.getJobID()));
        }
    }

    /** Replaces ${NAME:-default}; a placeholder without default must be set. */
    static String substitute(String sql) {
        Matcher m = PLACEHOLDER.matcher(sql);
        StringBuilder out = new StringBuilder();
        while (m.find()) {
            String value = System.getenv(m.group(1));
            if (value == null || value.isEmpty()) value = m.group(2);
            if (value == null) throw new IllegalArgumentException("${" + m.group(1) + "} is not set");
            m.appendReplacement(out, Matcher.quoteReplacement(value));
        }
        return m.appendTail(out).toString();
    }

    /** Splits on ';' outside quotes and -- comments; a statement set runs up to its "END;". */
    static List<String> split(String sql) {
        List<String> statements = new ArrayList<>();
        StringBuilder current = new StringBuilder();
        int segment = 0; // start of the text after the last ';' inside a statement set
        boolean quoted = false;
        for (int i = 0; i < sql.length(); i++) {
            char c = sql.charAt(i);
            if (!quoted && sql.startsWith("--", i)) {
                i = sql.indexOf('\n', i);
                if (i < 0) break;
                current.append('\n');
                continue;
            }
            if (c == '\'') quoted = !quoted;
            if (c != ';' || quoted) {
                current.append(c);
                continue;
            }
            String s = current.toString().trim();
            boolean inSet = s.toUpperCase(Locale.ROOT).replaceAll("\\s+", " ").startsWith("EXECUTE STATEMENT SET");
            if (inSet && !current.substring(segment).trim().equalsIgnoreCase("END")) {
                current.append(c);
                segment = current.length();
                continue;
            }
            if (!s.isEmpty()) statements.add(s);
            current.setLength(0);
            segment = 0;
        }
        if (!current.toString().isBlank()) statements.add(current.toString().trim());
        return statements;
    }
}
