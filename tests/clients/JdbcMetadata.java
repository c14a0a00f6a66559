// What a JDBC BI tool (DBeaver, Metabase, Tableau's JDBC path) asks pgjdbc about
// `panorama serve`: every DatabaseMetaData call they use, a prepared statement, and a
// transaction with autocommit off. Prints one line per call: `name<TAB>value` or
// `name<TAB>ERROR message`.
//
//     java -cp postgresql.jar JdbcMetadata.java HOST PORT [USER PASSWORD CAFILE]
import java.sql.*;
import java.util.*;

public class JdbcMetadata {
    interface Call { Object run() throws Exception; }

    static void call(String name, Call c) {
        String out;
        try {
            out = String.valueOf(c.run());
        } catch (Exception e) {
            out = "ERROR " + String.valueOf(e.getMessage()).split("\n")[0];
        }
        System.out.println(name + "\t" + out);
    }

    // The number of customers, read inside the open transaction, which is then committed.
    static long customersThenCommit(Connection c) throws SQLException {
        ResultSet r = c.createStatement().executeQuery("SELECT count(*) FROM unified_customers");
        r.next();
        long n = r.getLong(1);
        c.commit();
        return n;
    }

    static List<String> column(ResultSet rs, String name) throws SQLException {
        List<String> out = new ArrayList<>();
        while (rs.next()) out.add(rs.getString(name));
        return out;
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://" + args[0] + ":" + args[1] + "/panorama";
        String user = "analyst", password = "";
        if (args.length == 5) {
            // USER PASSWORD CAFILE: TLS with the server's certificate checked, and a password.
            user = args[2];
            password = args[3];
            url += "?ssl=true&sslmode=verify-full&sslrootcert=" + args[4];
            final String u = url, name = user, wrong = "wrong-" + password;
            call("wrong_password", () -> { DriverManager.getConnection(u, name, wrong).close(); return "connected"; });
        }
        try (Connection c = DriverManager.getConnection(url, user, password)) {
            DatabaseMetaData md = c.getMetaData();
            call("product", () -> md.getDatabaseProductName() + " " + md.getDatabaseProductVersion());
            call("version", () -> { ResultSet r = c.createStatement().executeQuery("SELECT version()"); r.next(); return r.getString(1); });
            call("schemas", () -> column(md.getSchemas(), "TABLE_SCHEM"));
            call("tables", () -> column(md.getTables(null, "public", "%", new String[] {"TABLE"}), "TABLE_NAME").contains("unified_customers"));
            call("views", () -> column(md.getTables(null, "public", "%", new String[] {"VIEW"}), "TABLE_NAME"));
            call("columns", () -> column(md.getColumns(null, "public", "unified_customers", "%"), "COLUMN_NAME").size());
            call("remarks", () -> { ResultSet r = md.getColumns(null, "public", "unified_customers", "customer_id"); r.next(); return r.getString("REMARKS"); });
            call("table_remarks", () -> { ResultSet r = md.getTables(null, "public", "segment_members", null); r.next(); return r.getString("REMARKS"); });
            call("primary_keys", () -> column(md.getPrimaryKeys(null, "public", "segment_members"), "COLUMN_NAME"));
            call("imported_keys", () -> column(md.getImportedKeys(null, "public", "segment_members"), "PKTABLE_NAME"));
            call("exported_keys", () -> column(md.getExportedKeys(null, "public", "unified_customers"), "FKTABLE_NAME").contains("segment_members"));
            call("index_info", () -> column(md.getIndexInfo(null, "public", "unified_customers", false, true), "INDEX_NAME"));
            call("best_row", () -> column(md.getBestRowIdentifier(null, "public", "unified_customers", DatabaseMetaData.bestRowSession, true), "COLUMN_NAME"));
            call("functions", () -> column(md.getFunctions(null, "public", "%"), "FUNCTION_NAME").size());
            call("procedures", () -> column(md.getProcedures(null, "public", "%"), "PROCEDURE_NAME").size());
            call("type_info", () -> column(md.getTypeInfo(), "TYPE_NAME").contains("int4"));
            call("udts", () -> column(md.getUDTs(null, "public", "%", null), "TYPE_NAME").size());
            call("table_privileges", () -> column(md.getTablePrivileges(null, "public", "unified_customers"), "PRIVILEGE").size() > 0);
            call("prepared", () -> {
                PreparedStatement p = c.prepareStatement("SELECT count(*) FROM segment_members WHERE segment = ?");
                p.setString(1, "champions");
                ResultSet r = p.executeQuery();
                r.next();
                return r.getLong(1);
            });
            call("autocommit_off", () -> {
                c.setAutoCommit(false);
                return customersThenCommit(c);
            });
            call("savepoint", () -> {
                // Over the extended protocol, as pgjdbc sends everything: a failed statement
                // rolled back to a savepoint leaves the transaction usable.
                c.setAutoCommit(false);
                Savepoint before = c.setSavepoint("before");
                try {
                    c.createStatement().executeQuery("SELECT no_such_column FROM unified_customers");
                } catch (SQLException expected) {
                    // the failure is the point
                }
                c.rollback(before);
                return customersThenCommit(c);
            });
            call("write", () -> c.createStatement().executeUpdate("DELETE FROM unified_customers"));
            call("after_write", () -> { c.rollback(); ResultSet r = c.createStatement().executeQuery("SELECT 1"); r.next(); return r.getInt(1); });
        }
    }
}
